"""Route path patterns: parsing, shapes, precedence and matching (routes/paths.py)."""

from __future__ import annotations

import pytest

from routes import paths


def match(patterns: list[str], path: str):
    parsed = sorted(((paths.parse(p), p) for p in patterns), key=lambda pair: pair[0].rank)
    return paths.best_match(parsed, paths.request_segments(path))


@pytest.mark.parametrize(
    "text, problem",
    [
        ("stripe", "must start with /"),
        ("/a//b", "empty segment"),
        ("/a/", "must not end with /"),
        ("/a b", "letters, digits"),
        ("/{x}/{x}", "appears twice"),
        ("/{rest+}/tail", "must be the last segment"),
        ("/{1x}", "letters, digits"),
        ("/" + "a" * 300, "at most 300"),
        ("/a" * 17, "at most 16 segments"),
    ],
)
def test_it_refuses_malformed_patterns_saying_why(text, problem):
    with pytest.raises(paths.BadPattern, match=problem):
        paths.parse(text)


def test_it_names_the_shape_without_parameter_names():
    assert paths.parse("/hello/{name}").shape == paths.parse("/hello/{who}").shape == "/hello/{}"
    assert paths.parse("/files/{path+}").shape == "/files/{+}"
    assert paths.parse("/").shape == "/"


def test_it_matches_parameters_and_the_greedy_rest():
    assert match(["/hello/{name}"], "/hello/ada") == ("/hello/{name}", {"name": "ada"})
    assert match(["/hello/{name}"], "/hello/ada/") == ("/hello/{name}", {"name": "ada"})
    assert match(["/hello/{name}"], "/hello") is None
    assert match(["/hello/{name}"], "/hello/ada/x") is None
    assert match(["/files/{path+}"], "/files/a/b/c.txt") == ("/files/{path+}", {"path": "a/b/c.txt"})
    assert match(["/files/{path+}"], "/files") is None
    assert match(["/"], "/") == ("/", {})
    assert match(["/"], "") == ("/", {})


def test_an_encoded_slash_stays_inside_its_segment_and_is_decoded():
    assert match(["/hello/{name}"], "/hello/a%2Fb") == ("/hello/{name}", {"name": "a/b"})
    assert match(["/hello/{name}"], "/hello/%C3%A9") == ("/hello/{name}", {"name": "é"})


def test_the_most_specific_pattern_wins():
    patterns = ["/{any+}", "/a/{x}", "/a/b", "/{x}/b"]
    assert match(patterns, "/a/b")[0] == "/a/b"
    assert match(patterns, "/a/c")[0] == "/a/{x}"
    assert match(patterns, "/z/b")[0] == "/{x}/b"
    assert match(patterns, "/z/z/z")[0] == "/{any+}"
