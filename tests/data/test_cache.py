import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from memctl.data.cache import CacheReader, check_cache
from memctl.data.cache_build import Encoders, build_cache
from memctl.data.images import load_image
from memctl.data.sources import Record, SourceOptions, load_source
from memctl.data.splits import assign_splits
from memctl.errors import UserError
from memctl.models.tiny import MAX_TOKENS
from tests.conftest import REPO
from tests.data.conftest import STUDIES, dicom_id, truncate, write_image

RES = 64
FP = "model-fp"


class Counting(Encoders):
    """Counts what reaches the encoders, to prove nothing is encoded twice."""

    def __init__(self, base: Encoders) -> None:
        super().__init__(base.vae, base.tokenizer, base.text_encoder)
        self.images = self.texts = 0

    def encode_images(self, pixels):
        self.images += len(pixels)
        return super().encode_images(pixels)

    def encode_text(self, captions):
        self.texts += len(captions)
        return super().encode_text(captions)


class Stop(Exception):
    pass


def mimic_inputs(root: Path):
    res = load_source("mimic", SourceOptions(path=str(root)))
    labels = assign_splits([r.subject_id for r in res.records], 0.2, 0.2, 0,
                           official=[r.split for r in res.records])
    return res, labels


def build(out: Path, root: Path, enc: Encoders, **kw) -> Path:
    res, labels = mimic_inputs(root)
    return build_cache(out, res.records, labels, enc, FP, RES, batch_size=2,
                       skipped=res.skipped, **kw)


def contents(path: Path) -> dict:
    with h5py.File(path, "r", locking=False) as f:
        out = {name: f[name][:] for name in f}
        out["attrs"] = dict(f.attrs)
    return out


def assert_same(a: Path, b: Path) -> None:
    ca, cb = contents(a), contents(b)
    assert ca.keys() == cb.keys()
    assert {k: str(v) for k, v in ca.pop("attrs").items()} == \
        {k: str(v) for k, v in cb.pop("attrs").items()}
    for key in ca:
        np.testing.assert_array_equal(ca[key], cb[key], err_msg=key)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, mimic_root, encoders) -> Path:
    return build(tmp_path_factory.mktemp("clean") / "c.h5", mimic_root, encoders)


def test_skipped_items_listed_with_reasons(clean, mimic_root):
    reader = CacheReader(clean)
    info = reader.info()
    reasons = {Path(p).stem: r for p, r in reader.skipped}
    assert reasons[dicom_id(STUDIES[3], "PA")].startswith("missing report: ")
    assert reasons[dicom_id(STUDIES[4], "PA")].startswith("empty caption")
    assert reasons[dicom_id(STUDIES[6], "PA")].startswith("truncated image: ")
    assert reasons[dicom_id(STUDIES[7], "AP")] == "empty image file"
    assert info["skipped_by_reason"] == {"missing report": 1, "empty caption": 1,
                                         "truncated image": 1, "empty image file": 1}
    assert info["usable"] == info["images"] - 2 == len(reader.usable())
    assert reader.attrs["n_source_skipped"] == 2
    # The long impression exceeds the tiny text encoder's token limit.
    assert info["token_limit"] == MAX_TOKENS
    assert info["captions_truncated"] == info["images_with_truncated_caption"] == 1
    assert oct(clean.stat().st_mode & 0o777) == "0o600"


def test_load_reads_only_the_prompts_it_needs(clean):
    reader = CacheReader(clean)
    idx = reader.usable()[:3] + reader.usable()[:1]
    data = reader.load(idx)
    side = RES // 2  # the embedded VAE halves each side
    assert data.latent_mean.shape == (4, 4, side, side)
    assert data.latent_mean.dtype == torch.float32
    assert len(data.prompt_embeds) == len({reader.prompt_index[i] for i in idx})
    for k, i in enumerate(idx):
        assert reader.captions[data.prompt_rows[data.prompt_index[k]]] == reader.caption_of(i)
    torch.testing.assert_close(data.latent_mean[3], data.latent_mean[0])
    half = reader.load(idx, dtype=torch.float16)
    assert half.latent_mean.dtype == torch.float16
    blocks = list(reader.iter_load(idx, rows_per_block=3))
    assert [len(b) for b in blocks] == [3, 1]
    torch.testing.assert_close(torch.cat([b.latent_mean for b in blocks]), data.latent_mean)
    assert len(reader.load([])) == 0


def test_prompts_on_disk_index_like_tensors(clean):
    reader = CacheReader(clean)
    idx = reader.usable()
    mem = reader.load(idx)
    disk = reader.load(idx, dtype=torch.float16, prompts_on_disk=True)
    batch = torch.tensor([3, 0, 3, 1])  # what the training loop does every step
    torch.testing.assert_close(disk.prompt_embeds[disk.prompt_index[batch]].float(),
                               mem.prompt_embeds[mem.prompt_index[batch]], atol=0, rtol=0)
    torch.testing.assert_close(disk.latent_mean.float(), mem.latent_mean, atol=0, rtol=0)
    assert disk.prompt_embeds[int(disk.prompt_index[0])].shape == mem.prompt_embeds.shape[1:]
    assert len(disk.prompt_embeds) == len(reader.captions)


def test_interrupted_build_resumes_without_reencoding(tmp_path, mimic_root, encoders, clean):
    first = Counting(encoders)
    n_prompts = len(CacheReader(clean).captions)

    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= n_prompts + 4:
            raise Stop

    out = tmp_path / "r.h5"
    with pytest.raises(Stop):
        build(out, mimic_root, first, progress=stop_after_two_batches)
    assert not out.exists() and out.with_name("r.h5.partial").exists()
    assert first.texts == n_prompts + 1  # + the empty prompt
    second = Counting(encoders)
    build(out, mimic_root, second)
    usable = len(CacheReader(clean).usable())
    assert second.texts == 0 and first.images + second.images == usable
    assert_same(out, clean)


def test_interrupted_text_phase_resumes(tmp_path, mimic_root, encoders, clean):
    def stop_at_once(done: int, total: int) -> None:
        raise Stop

    out = tmp_path / "t.h5"
    with pytest.raises(Stop):
        build(out, mimic_root, encoders, progress=stop_at_once)
    counting = Counting(encoders)
    build(out, mimic_root, counting)
    assert counting.texts == len(CacheReader(clean).captions)
    assert_same(out, clean)


KILLED_BUILD = """
import sys, time
from pathlib import Path
from memctl.data.cache_build import Encoders
from memctl.models.load import load_components
from tests.data.test_cache import build

root, model, out, marker, stop_at = sys.argv[1:]
comps = load_components(model)
enc = Encoders(comps.vae, comps.tokenizer, comps.text_encoder)

def progress(done, total):
    if done >= int(stop_at):
        Path(marker).write_text(str(done))
        time.sleep(600)  # killed here, file still open

build(Path(out), Path(root), enc, progress=progress)
"""


def test_build_killed_with_sigkill_resumes(tmp_path, mimic_root, encoders, clean,
                                           tiny_model_dir):
    reader = CacheReader(clean)
    n_prompts = len(reader.captions)
    out, marker = tmp_path / "k.h5", tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(mimic_root), str(tiny_model_dir), str(out),
         str(marker), str(n_prompts + 6)], env=env, cwd=REPO, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the build never reached the kill point"
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    rows_done = int(marker.read_text()) - n_prompts
    counting = Counting(encoders)
    build(out, mimic_root, counting)
    assert counting.texts == 0
    assert counting.images == int((~reader.failed[rows_done:]).sum())
    assert_same(out, clean)


PAUSED_BUILD = KILLED_BUILD.replace("time.sleep(600)  # killed here, file still open",
                                    "time.sleep(4)  # another build starts meanwhile")


def test_second_build_waits_for_the_first_and_reuses_it(tmp_path, mimic_root, encoders, clean,
                                                         tiny_model_dir):
    """Two searches started at once: the second must not take the first's `.partial` for
    a stale one (and rebuild it under the first, whose rename then fails)."""
    out, marker = tmp_path / "w.h5", tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_BUILD, str(mimic_root), str(tiny_model_dir), str(out),
         str(marker), str(len(CacheReader(clean).captions) + 2)], env=env, cwd=REPO,
        stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the first build never got going"
        time.sleep(0.1)
    counting = Counting(encoders)
    build(out, mimic_root, counting)  # while the first is mid-build
    assert first.wait(timeout=120) == 0, first.stderr.read().decode()[-2000:]
    assert counting.texts == counting.images == 0  # reused, not rebuilt
    assert_same(out, clean)


def test_stale_partial_is_rebuilt(tmp_path, mimic_root, encoders, clean):
    out = tmp_path / "s.h5"
    out.with_name("s.h5.partial").write_bytes(b"not hdf5")
    build(out, mimic_root, encoders)
    assert_same(out, clean)


def test_fingerprint_mismatch_refused(clean, mimic_root, encoders):
    res, labels = mimic_inputs(mimic_root)
    other = [Record(r.path, r.caption + " changed", r.subject_id) for r in res.records]
    with pytest.raises(UserError, match="fingerprint .* does not match these records"):
        build_cache(clean, other, labels, encoders, FP, RES)
    with pytest.raises(UserError, match="another model"):
        check_cache(clean, "other-model", RES)
    with pytest.raises(UserError, match="built at 64 px, config asks for 128"):
        check_cache(clean, FP, 128)
    build_cache(clean, res.records, labels, encoders, FP, RES)  # the same records: reused


def test_nothing_usable_is_a_user_error(tmp_path, encoders):
    bad = [write_image(tmp_path / f"{i}.jpg", i, fmt="JPEG") for i in range(2)]
    truncate(bad[0])
    bad[1].write_bytes(b"")
    recs = [Record(str(p), "No acute process.", f"s{i}") for i, p in enumerate(bad)]
    recs.append(Record(str(tmp_path / "gone.png"), "No acute process.", "s2"))
    with pytest.raises(UserError, match="no usable images"):
        build_cache(tmp_path / "x.h5", recs, ["train"] * 3, encoders, FP, RES)
    with h5py.File(tmp_path / "x.h5.partial", "r") as f:
        reasons = [r.decode() for _, r in f["skipped"][:]]
    assert reasons[1:] == ["empty image file", "missing image file"]
    assert reasons[0].startswith("truncated image")


def _read_many(args):
    path, seed = args
    torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork
    reader = CacheReader(path)
    rng = np.random.default_rng(seed)
    sums = []
    for _ in range(20):
        idx = sorted(rng.choice(reader.usable(), size=4, replace=False).tolist())
        data = reader.load(idx)
        sums.append((idx, float(data.latent_mean.double().sum())))
    return sums


def test_many_processes_read_at_once(clean):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_read_many, [(str(clean), s) for s in range(4)])
    reader = CacheReader(clean)
    for sums in results:
        for idx, total in sums:
            assert total == pytest.approx(float(reader.load(idx).latent_mean.double().sum()))


def test_preprocessing_is_deterministic(tmp_path):
    big = write_image(tmp_path / "big.jpg", 0, size=(1000, 800), fmt="JPEG")
    a, b = load_image(str(big), RES), load_image(str(big), RES)
    assert a.shape == (3, RES, RES) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
