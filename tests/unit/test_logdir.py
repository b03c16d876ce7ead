from pathlib import Path

import pytest

from nixlift.errors import UsageError
from nixlift.events import Output
from nixlift.ui.logdir import LogDir, log_name


@pytest.mark.parametrize("name", ["a/b", "../../x", "..", ".", "/etc/passwd", "h 1", "ä"])
def test_every_machine_name_stays_inside_the_directory(tmp_path: Path, name: str) -> None:
    logs = LogDir(tmp_path / "logs")
    logs(Output(name, "hello"))
    logs.close()
    files = list((tmp_path / "logs").iterdir())
    assert [f.name for f in files] == [log_name(name)]
    assert "hello" in files[0].read_text()
    assert list(tmp_path.iterdir()) == [tmp_path / "logs"]


def test_plain_names_keep_their_file_name() -> None:
    assert log_name("web-1.example.com") == "web-1.example.com.log"
    assert log_name("a/b") != log_name("a_b")


def test_a_file_in_the_way_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match=r"--log-dir .*/f: a file of that name exists"):
        LogDir(tmp_path / "f")
    with pytest.raises(UsageError, match=r"--log-dir .*/f/sub: "):
        LogDir(tmp_path / "f" / "sub")
