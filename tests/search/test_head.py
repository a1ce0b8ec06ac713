import pytest

from memctl.errors import UserError
from memctl.search.head import run_search
from tests.conftest import small_config


def test_unreachable_storage_fails_before_anything_is_built(tmp_path):
    cfg = small_config(tmp_path / "runs",
                       search={"storage": "postgresql+psycopg2://u:hunter2@127.0.0.1:1/x"})
    with pytest.raises(UserError, match=r"u:\*\*\*@127.0.0.1:1/x: cannot open"):
        run_search(cfg)
    assert not (tmp_path / "runs").exists()
