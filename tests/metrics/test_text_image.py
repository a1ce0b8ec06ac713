import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

from memctl.errors import UserError
from memctl.metrics.features import get_extractor
from memctl.metrics.text_image import biovil_t_score, clip_score

WORDS = ["<pad>", "<unk>", "<bos>", "<eos>", "chest", "x-ray", "with", "no", "effusion"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A random tiny CLIP with a word-level tokenizer, saved as a local model directory."""
    path = tmp_path_factory.mktemp("clip")
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
    ).save_pretrained(path)
    torch.manual_seed(0)
    text = dict(
        vocab_size=len(WORDS),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    vision = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(
        path
    )
    return path


def test_clip_score_matches_a_direct_computation(clip_dir):
    images = torch.rand(3, 1, 40, 48, generator=torch.Generator().manual_seed(1))
    captions = ["chest x-ray", "no effusion", "chest x-ray with effusion"]
    score = clip_score(images, captions, clip_dir, batch_size=2)
    assert score.available and score.n == 3 and score.name == "clip_score"

    model = CLIPModel.from_pretrained(clip_dir).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(clip_dir)
    image_feats = get_extractor("clip", weights=str(clip_dir))(images)
    with torch.no_grad():
        tokens = tokenizer(captions, padding=True, return_tensors="pt")
        out = model.get_text_features(**tokens)
    text_feats = out if isinstance(out, torch.Tensor) else out.pooler_output
    cos = torch.nn.functional.cosine_similarity(image_feats, text_feats)
    assert score.value == pytest.approx(float(100 * cos.clamp_min(0).mean()), rel=1e-4)


def test_clip_extractor_output_shape(clip_dir):
    extractor = get_extractor("clip", weights=str(clip_dir))
    assert extractor.dim == 8
    assert extractor(torch.rand(2, 3, 32, 32)).shape == (2, 8)


def test_clip_score_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "missing")):
        clip_score(torch.rand(1, 3, 8, 8), ["chest"], tmp_path / "missing")


def test_biovil_t_reports_unavailable_instead_of_raising(tmp_path):
    score = biovil_t_score(torch.rand(2, 1, 8, 8), ["a", "b"], tmp_path)
    assert not score.available and score.value is None and score.n == 2
    assert "hi-ml-multimodal" in score.reason or str(tmp_path) in score.reason


def test_mismatched_pairs_are_rejected(clip_dir):
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        clip_score(torch.rand(2, 3, 8, 8), ["chest"], clip_dir)
