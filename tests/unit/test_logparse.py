from nixlift.nix.logparse import Counts, NixLog

COPY = [
    '@nix {"action":"start","id":1,"level":3,"text":"copying 2 paths","type":103}',
    '@nix {"action":"start","fields":["/nix/store/a"],"id":2,"level":3,'
    '"text":"copying path \'/nix/store/a\' to \'ssh://h1\'","type":100}',
    '@nix {"action":"stop","id":2}',
    '@nix {"action":"start","id":3,"level":3,"text":"copying path b","type":100}',
    '@nix {"action":"stop","id":3}',
    '@nix {"action":"stop","id":1}',
]

BUILD = [
    '@nix {"action":"start","id":10,"level":6,"text":"querying info about missing paths","type":0}',
    '@nix {"action":"msg","level":3,"msg":"this derivation will be built:"}',
    '@nix {"action":"start","id":11,"level":0,"text":"","type":104}',
    '@nix {"action":"result","fields":[0,1,0,0],"id":11,"type":105}',
    '@nix {"action":"start","id":12,"level":3,"text":"building \'/nix/store/x.drv\'","type":105}',
    '@nix {"action":"result","fields":["building-now"],"id":12,"type":101}',
    '@nix {"action":"msg","level":0,"msg":"error: builder for \'/nix/store/x.drv\' failed"}',
    "a plain line",
]


def test_copy_counts_paths_without_a_line_per_path() -> None:
    log = NixLog()
    counts = [log.feed(line)[1] for line in COPY]
    assert counts[0] == Counts(0, 2, "paths")
    assert [c for c in counts if c is not None][-1] == Counts(2, 2, "paths")
    assert log.tail == "copying 2 paths"


def test_build_lines_progress_and_errors() -> None:
    log = NixLog()
    texts = [log.feed(line)[0] for line in BUILD]
    assert texts[0] is None  # a chatty activity is not shown
    assert "building-now" in texts and "a plain line" in texts
    assert log.builds == Counts(0, 1, "builds")
    assert log.tail.splitlines()[-2:] == [
        "error: builder for '/nix/store/x.drv' failed",
        "a plain line",
    ]


def test_garbage_after_the_prefix_is_kept_as_text() -> None:
    log = NixLog()
    assert log.feed("@nix {not json") == ("@nix {not json", None)


def test_the_end_of_each_derivations_build_is_reported() -> None:
    log = NixLog()
    ended: list[str] = []
    log.on_build_end = ended.append
    for line in [
        '@nix {"action":"start","id":5,"level":3,"text":"building a","type":105,'
        '"fields":["/nix/store/a.drv","",1,1]}',
        '@nix {"action":"start","id":6,"level":3,"text":"building b","type":105,'
        '"fields":["/nix/store/b.drv","",1,1]}',
        '@nix {"action":"stop","id":6}',
        '@nix {"action":"stop","id":5}',
        '@nix {"action":"stop","id":7}',
    ]:
        log.feed(line)
    assert ended == ["/nix/store/b.drv", "/nix/store/a.drv"]
