"""engine.toml and policies/performance.yml: defaults, and every mistake named by file and key."""

import pytest

from engine.config import DEFAULT_TOML, Config, load_config, load_performance
from engine.errors import WorkspaceError


def test_the_file_engine_init_writes_holds_exactly_the_defaults(tmp_path):
    (tmp_path / "engine.toml").write_text(DEFAULT_TOML)
    assert load_config(tmp_path) == Config()
    assert load_config(tmp_path / "nowhere") == Config()


@pytest.mark.parametrize(("text", "where"), [
    ("[queue]\nmax_claims = 0\n", "queue.max_claims"),
    ("[queue]\nmax_claim = 3\n", "queue.max_claim"),
    ('[telemetry]\nexport = "jaeger"\n', "telemetry.export"),
    ("[plugins]\nstop_grace_sec = 'soon'\n", "plugins.stop_grace_sec"),
])
def test_a_bad_setting_is_named_by_file_and_key(tmp_path, text, where):
    (tmp_path / "engine.toml").write_text(text)
    with pytest.raises(WorkspaceError) as caught:
        load_config(tmp_path)
    assert str(tmp_path / "engine.toml") in caught.value.message
    assert [p.path for p in caught.value.problems] == [where]


def test_a_toml_syntax_error_names_the_line(tmp_path):
    (tmp_path / "engine.toml").write_text("[queue]\nmax_claims = = 3\n")
    with pytest.raises(WorkspaceError, match=r"engine.toml: not valid TOML: .*line 2"):
        load_config(tmp_path)


def test_performance_bounds_per_category(tmp_path):
    path = tmp_path / "performance.yml"
    path.write_text("timeouts:\n  transformation: 5\n")
    perf = load_performance(path)
    assert perf.bound("transformation") == 5 and perf.bound("state_change") == 1800
    path.write_text("timeouts:\n  transformaton: 5\n")
    with pytest.raises(WorkspaceError) as caught:
        load_performance(path)
    assert caught.value.problems[0].path == "timeouts.transformaton"
    path.write_text("timeouts:\n  validation: -1\n")
    with pytest.raises(WorkspaceError):
        load_performance(path)
    path.write_text("timeouts: [\n")
    with pytest.raises(WorkspaceError) as caught:
        load_performance(path)
    assert caught.value.problems[0].line == 2
