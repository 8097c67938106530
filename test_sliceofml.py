#!/usr/bin/env python3
"""Tests for sliceofml, the fake X API they run against, and the demo and benchmark.

    python3 test_sliceofml.py                 # the suite on this Python
    python3 test_sliceofml.py --all-pythons   # the suite on every CPython 3.8 to 3.13 found
    python3 test_sliceofml.py demo            # the weekly table from the fake X API
    python3 test_sliceofml.py bench           # start-up, fetch and rendering figures

Everything here talks only to servers it starts on 127.0.0.1.
"""

import collections
import ctypes
import doctest
import glob
import gzip
import http.server
import io
import json
import netrc
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock
from urllib.parse import parse_qs, unquote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SLICEOFML_PATH = os.path.join(HERE, "sliceofml.py")
sys.path.insert(0, HERE)

import sliceofml  # noqa: E402  (the path above makes the module next to this file importable)


def load_tests(loader, tests, pattern):
    """Add the doctests of sliceofml's small helpers to the suite."""
    tests.addTests(doctest.DocTestSuite(sliceofml))
    return tests


def pyenv_root():
    """Return pyenv's root folder, or None when pyenv is not installed."""
    if os.environ.get("PYENV_ROOT"):
        return os.environ["PYENV_ROOT"]
    try:
        completed = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   universal_newlines=True, timeout=20)
        if completed.returncode == 0 and completed.stdout.strip():
            return completed.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    default = os.path.expanduser("~/.pyenv")
    return default if os.path.isdir(default) else None


def python_version(binary):
    """Return (major, minor, micro) of a Python binary, or None when it does not run."""
    try:
        completed = subprocess.run([binary, "-c", "import sys; print('%d %d %d' % sys.version_info[:3])"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   universal_newlines=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    try:
        return tuple(int(part) for part in completed.stdout.split())
    except ValueError:
        return None


def find_pythons(minors):
    """Return {(3, minor): (binary, version)} for the CPythons found on PATH and under pyenv.

    pyenv's shims on PATH fail for versions that are not active, so each candidate is run once.
    """
    candidates = []
    root = pyenv_root()
    for minor in minors:
        if root:
            candidates.extend(sorted(glob.glob(os.path.join(root, "versions", "3.%d.*" % minor, "bin",
                                                            "python3.%d" % minor)), reverse=True))
        on_path = shutil.which("python3.%d" % minor)
        if on_path:
            candidates.append(on_path)
    candidates.append(sys.executable)
    found = {}
    for binary in candidates:
        version = python_version(binary)
        if version and version[:2] in [(3, minor) for minor in minors] and version[:2] not in found:
            found[version[:2]] = (binary, version)
    return found


def find_python(version):
    """Return a binary of Python `version` ("3.6"), or None."""
    minor = int(version.split(".")[1])
    found = find_pythons([minor])
    return found[(3, minor)][0] if (3, minor) in found else None
# ==============================================================================================
# Unit tests: time windows, ranking, page parsing, pager, rendering, style, netrc text edits
# ==============================================================================================


class StubSearchClient(object):
    """A stand-in for ApiClient that serves pages of a fixed post list per time window.

    Each post is (id, created_at Unix seconds, likes, retweets). Pages are newest first, `page_size`
    posts each; the next_token is the offset as text. No HTTP is involved, so tests of the pager's
    scheduling are exact and fast.
    """

    def __init__(self, posts, page_size=2, remaining=None, delay=0.0):
        self.posts = sorted(posts, key=lambda post: post[1], reverse=True)
        self.page_size = page_size
        self.rate_limit_remaining = remaining
        self.delay = delay
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0

    def log(self, message):
        pass

    def request_json(self, method, path, params=None, body=None, headers=None):
        with self.lock:
            self.requests.append(dict(params))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            start = sliceofml.parse_rfc3339(params["start_time"])
            end = sliceofml.parse_rfc3339(params["end_time"])
            matching = [post for post in self.posts if start <= post[1] < end]
            offset = int(params.get("next_token", "0"))
            page = matching[offset:offset + self.page_size]
            document = {"meta": {"result_count": len(page)}}
            if page:
                document["data"] = [
                    {"id": str(post[0]), "author_id": "1", "text": "post %d" % post[0],
                     "created_at": sliceofml.format_rfc3339(post[1])[:-1] + ".000Z",
                     "public_metrics": {"like_count": post[2], "retweet_count": post[3]}}
                    for post in page
                ]
                document["includes"] = {"users": [{"id": "1", "username": "author"}]}
            if offset + self.page_size < len(matching):
                document["meta"]["next_token"] = str(offset + self.page_size)
            return document
        finally:
            with self.lock:
                self.in_flight -= 1


WEEK_END = 1796817570  # 2026-12-09T11:59:30Z
WEEK = sliceofml.TimeWindow("weekly", WEEK_END - 7 * 86400 + 150, WEEK_END)


def week_of_posts(per_day=9):
    """Return posts spread evenly over WEEK, with distinct like counts."""
    posts = []
    span = WEEK.end - WEEK.start
    count = per_day * 7
    for index in range(count):
        created = WEEK.start + span * index // count + 17
        posts.append((10 ** 18 + index, created, (index * 37) % 101, index % 5))
    return posts


class TimeWindowTests(unittest.TestCase):
    def test_daily_window_ends_before_now(self):
        window = sliceofml.make_time_window("daily", 1796817600)
        self.assertEqual(sliceofml.format_rfc3339(window.end), "2026-12-09T11:59:30Z")
        self.assertEqual(sliceofml.format_rfc3339(window.start), "2026-12-08T11:59:30Z")

    def test_weekly_window_keeps_margin(self):
        window = sliceofml.make_time_window("weekly", 1796817600)
        self.assertEqual(sliceofml.format_rfc3339(window.start), "2026-12-02T12:02:00Z")
        self.assertEqual(sliceofml.format_rfc3339(window.end), "2026-12-09T11:59:30Z")

    def test_split_covers_window_newest_first(self):
        pieces = WEEK.split(7)
        self.assertEqual(len(pieces), 7)
        self.assertEqual(pieces[0].end, WEEK.end)
        self.assertEqual(pieces[-1].start, WEEK.start)
        for newer, older in zip(pieces, pieces[1:]):
            self.assertEqual(older.end, newer.start)

    def test_parse_rfc3339_forms(self):
        self.assertEqual(sliceofml.parse_rfc3339("2026-11-27T10:00Z"), 1795773600)
        self.assertEqual(sliceofml.parse_rfc3339("2026-11-27T10:00:05Z"), 1795773605)
        self.assertEqual(sliceofml.parse_rfc3339("2026-11-30T08:15:02.000Z"), 1796026502)
        self.assertIsNone(sliceofml.parse_rfc3339("2026-11-27 10:00"))
        self.assertIsNone(sliceofml.parse_rfc3339("2026-13-45T10:00Z"))


class RankingTests(unittest.TestCase):
    def post(self, post_id, likes, retweets=0, created="2026-11-30T08:00:00.000Z"):
        return sliceofml.Post(post_id, "user", "text", likes, retweets, created)

    def test_ties_break_by_retweets_then_newest(self):
        top = sliceofml.TopPosts(10)
        top.add(self.post("1", 5, 1, "2026-11-30T08:00:00.000Z"))
        top.add(self.post("2", 5, 2, "2026-11-30T07:00:00.000Z"))
        top.add(self.post("3", 5, 1, "2026-11-30T09:00:00.000Z"))
        top.add(self.post("4", 9, 0, "2026-11-30T06:00:00.000Z"))
        self.assertEqual([post.id for post in top.ranked()], ["4", "2", "3", "1"])

    def test_same_second_breaks_by_id(self):
        top = sliceofml.TopPosts(10)
        top.add(self.post("1862345678901230001", 5))
        top.add(self.post("1862345678901230009", 5))
        self.assertEqual([post.id for post in top.ranked()],
                         ["1862345678901230009", "1862345678901230001"])

    def test_keeps_only_best_and_counts_once(self):
        top = sliceofml.TopPosts(3)
        for likes in range(20):
            self.assertTrue(top.add(self.post(str(100 + likes), likes)))
        self.assertFalse(top.add(self.post("119", 19)))
        self.assertEqual(len(top.heap), 3)
        self.assertEqual(len(top.seen), 20)
        self.assertEqual([post.like_count for post in top.ranked()], [19, 18, 17])


class ReadPageTests(unittest.TestCase):
    def test_quirky_page(self):
        document = {
            "data": [
                {"id": "10", "author_id": "1", "text": "a &amp;amp; b &lt;3",
                 "public_metrics": {"like_count": "7", "retweet_count": True}},
                {"id": "11", "author_id": "404", "text": "cut …",
                 "note_tweet": {"text": "the whole long text"}, "public_metrics": None},
                {"text": "no id"},
                "not an object",
            ],
            "includes": {"users": [{"id": "1", "username": "alice"}]},
            "errors": [{"detail": "Could not find user with id: [404]."}],
        }
        top = sliceofml.TopPosts(10)
        count, next_token, partial = sliceofml.read_page(document, top)
        self.assertEqual(count, 2)
        self.assertIsNone(next_token)
        self.assertEqual(partial, [{"detail": "Could not find user with id: [404]."}])
        first, second = top.ranked()
        self.assertEqual(first.text, "a &amp; b <3")
        self.assertEqual(first.like_count, 7)
        self.assertEqual(first.retweet_count, 0)
        self.assertEqual(first.username, "alice")
        self.assertEqual(second.text, "the whole long text")
        self.assertIsNone(second.username)
        self.assertEqual(second.like_count, 0)

    def test_empty_page_keeps_next_token(self):
        top = sliceofml.TopPosts(10)
        document = {"meta": {"result_count": 0, "next_token": "b26v89c19zqg8o3fr5examplepage3"}}
        self.assertEqual(sliceofml.read_page(document, top),
                         (0, "b26v89c19zqg8o3fr5examplepage3", []))

    def test_page_without_meta_is_last(self):
        top = sliceofml.TopPosts(10)
        self.assertEqual(sliceofml.read_page({"data": []}, top), (0, None, []))


class PagerTests(unittest.TestCase):
    def collect(self, client, workers, max_pages, top=10):
        return sliceofml.collect_posts(client, sliceofml.TimeWindow(WEEK.name, WEEK.start, WEEK.end),
                                       top, max_pages, workers)

    def test_split_equals_sequential_when_budget_suffices(self):
        posts = week_of_posts()
        sequential = self.collect(StubSearchClient(posts), 1, 1000, top=20)
        concurrent = self.collect(StubSearchClient(posts), 4, 1000, top=20)
        self.assertEqual([post.id for post in concurrent.posts], [post.id for post in sequential.posts])
        self.assertEqual(concurrent.posts_read, 63)
        self.assertEqual(sequential.posts_read, 63)
        self.assertFalse(concurrent.budget_spent)
        expected = sorted(posts, key=lambda post: (post[2], post[3], post[1], post[0]), reverse=True)
        self.assertEqual([post.id for post in sequential.posts], [str(post[0]) for post in expected[:20]])

    def test_short_budget_spread_over_days(self):
        client = StubSearchClient(week_of_posts(), page_size=2)
        result = self.collect(client, 4, 10)
        self.assertEqual(result.pages, 10)
        self.assertTrue(result.budget_spent)
        per_window = collections.Counter(request["start_time"] for request in client.requests)
        self.assertEqual(len(per_window), 7)
        self.assertLessEqual(max(per_window.values()) - min(per_window.values()), 1)

    def test_post_in_two_windows_counted_once(self):
        boundary = WEEK.split(7)[0].start
        posts = [(1, boundary, 5, 0), (2, boundary - 1, 4, 0)]
        client = StubSearchClient(posts)
        original = client.request_json

        def overlapping(method, path, params=None, body=None, headers=None):
            # Widen each window by 2 s on both sides, as a server that rounds times might.
            params = dict(params)
            for key, shift in (("start_time", -2), ("end_time", 2)):
                params[key] = sliceofml.format_rfc3339(sliceofml.parse_rfc3339(params[key]) + shift)
            return original(method, path, params)

        client.request_json = overlapping
        result = self.collect(client, 4, 100)
        self.assertEqual(result.posts_read, 2)
        self.assertEqual([post.id for post in result.posts], ["1", "2"])

    def test_low_remaining_one_request_at_a_time(self):
        client = StubSearchClient(week_of_posts(), remaining=3, delay=0.02)
        self.collect(client, 4, 20)
        self.assertEqual(client.max_in_flight, 1)

    def test_plenty_remaining_runs_concurrently(self):
        client = StubSearchClient(week_of_posts(), remaining=400, delay=0.05)
        self.collect(client, 4, 20)
        self.assertGreater(client.max_in_flight, 1)

    def test_error_after_pages_returns_partial(self):
        client = StubSearchClient(week_of_posts(), page_size=2)
        original = client.request_json
        calls = []

        def failing(method, path, params=None, body=None, headers=None):
            calls.append(1)
            if len(calls) > 3:
                raise sliceofml.NetworkError("the connection to api.test failed (reset)")
            return original(method, path, params)

        client.request_json = failing
        result = self.collect(client, 1, 100)
        self.assertEqual(result.pages, 3)
        self.assertEqual(result.posts_read, 6)
        self.assertEqual(result.stop_reason, "the connection to api.test failed (reset)")
        self.assertFalse(result.complete)

    def test_error_on_first_page_raises(self):
        client = StubSearchClient(week_of_posts())

        def failing(method, path, params=None, body=None, headers=None):
            raise sliceofml.APIError("the API returned HTTP 403 Forbidden: Client Forbidden", status=403)

        client.request_json = failing
        with self.assertRaises(sliceofml.APIError):
            self.collect(client, 4, 10)


class WidthTests(unittest.TestCase):
    CASES = [
        ("🧵", 2), ("👩\u200d🔬", 2), ("❤\ufe0f", 2), ("❤", 1), ("机器学习", 8), ("ｍｌ", 4),
        ("مرحبا", 5), ("שלום", 4), ("e\u0301", 1), ("🇩🇪", 2), ("👍🏽", 2), ("a\u200bb", 2),
        ("\x1b[1;35mML\x1b[0m", 2), ("\x1b]8;;https://x.com\x1b\\view\x1b]8;;\x1b\\", 4),
    ]

    def test_display_width_cases(self):
        for text, width in self.CASES:
            with self.subTest(text=text):
                self.assertEqual(sliceofml.display_width(text), width)

    def test_clusters_keep_sequences_whole(self):
        clusters = sliceofml.split_clusters("👩\u200d🔬x❤\ufe0f")
        self.assertEqual(clusters, [("👩\u200d🔬", 2), ("x", 1), ("❤\ufe0f", 2)])

    def test_wrap_never_splits_a_cluster(self):
        lines = sliceofml.wrap_text("👩\u200d🔬" * 5, 5)
        self.assertEqual([line for line, _ in lines], ["👩\u200d🔬" * 2] * 2 + ["👩\u200d🔬"])
        self.assertEqual([cells for _, cells in lines], [4, 4, 2])

    def test_wrap_breaks_cjk_between_ideographs(self):
        lines = sliceofml.wrap_text("机器学习入门", 5)
        self.assertEqual([line for line, _ in lines], ["机器", "学习", "入门"])

    def test_wrap_limits_lines(self):
        lines = sliceofml.wrap_text("one two three four five six", 9, max_lines=2)
        self.assertEqual([line for line, _ in lines], ["one two", "three…"])

    def test_wrap_replaces_unencodable(self):
        lines = sliceofml.wrap_text("ML 机器 🚀 ok", 40, encoding="ascii")
        self.assertEqual(lines, [("ML ?? ? ok", 10)])


class CleanTextTests(unittest.TestCase):
    CASES = [
        ("\x1b[2Jclear", "clear"),
        ("\x1b]0;new title\x07x", "x"),
        ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),
        ("bell\x07 back\x08space", "bell backspace"),
        ("c1\x9b31mred \x85next", "c1red next"),
        ("\u202eevil\u202c \u2066iso\u2069 \u200fmark", "evil iso mark"),
        ("tab\there", "tab here"),
        ("crlf\r\nline\u2028sep", "crlf\nline\nsep"),
        ("\ud800lone", "\ufffdlone"),
        ("机器学习 ❤\ufe0f", "机器学习 ❤\ufe0f"),
    ]

    def test_clean_text_cases(self):
        for raw, cleaned in self.CASES:
            with self.subTest(raw=raw):
                self.assertEqual(sliceofml.clean_text(raw), cleaned)


HOSTILE_POSTS = [
    sliceofml.Post("1862345678901234567", "example_lab",
                   "Our new paper on sparse attention & long context is out 🚀\nCode: https://t.co/example",
                   1894, 210, "2026-11-30T08:15:02.000Z"),
    sliceofml.Post("1862345678901220002", "zh_ml", "机器学习入门 — 从线性回归到神经网络 👩\u200d🔬",
                   57, 3, "2026-11-30T08:13:00.000Z"),
    sliceofml.Post("1862345678901210003", "evil",
                   "\x1b[2J\x1b]0;pwned\x07clear\u202escreen\u202c\ttab\r\nnext ❤\ufe0f 🧵",
                   40, 1, "2026-11-30T08:12:00.000Z"),
    sliceofml.Post("1862345678901200004", None, "مرحبا بالتعلم الآلي and שלום ML",
                   12, 0, "2026-11-30T08:11:00.000Z"),
]
HOSTILE_RESULT = sliceofml.SliceResult(sliceofml.TimeWindow("weekly", 1796212800, 1796817570),
                                       HOSTILE_POSTS, 13, 1234)

TABLE_UNICODE_40 = (
    '        Your weekly slice of ML\n'
    '    02 Dec 12:00 – 09 Dec 11:59 UTC\n'
    '╭───┬──────────────────────────┬───────╮\n'
    '│ # │ Post                     │ Likes │\n'
    '├───┼──────────────────────────┼───────┤\n'
    '│ 1 │ @example_lab             │ 1,894 │\n'
    '│   │ Our new paper on sparse  │       │\n'
    '│   │ attention & long context │       │\n'
    '│   │ is out 🚀                │       │\n'
    '│   │ Code:                    │       │\n'
    '│   │ https://t.co/example     │       │\n'
    '│   │ https://x.com/example_la │       │\n'
    '│   │ b/status/186234567890123 │       │\n'
    '│   │ 4567                     │       │\n'
    '├───┼──────────────────────────┼───────┤\n'
    '│ 2 │ @zh_ml                   │    57 │\n'
    '│   │ 机器学习入门 — 从线性回  │       │\n'
    '│   │ 归到神经网络 👩\u200d🔬          │       │\n'
    '│   │ https://x.com/zh_ml/stat │       │\n'
    '│   │ us/1862345678901220002   │       │\n'
    '├───┼──────────────────────────┼───────┤\n'
    '│ 3 │ @evil                    │    40 │\n'
    '│   │ clearscreen tab          │       │\n'
    '│   │ next ❤️ 🧵               │       │\n'
    '│   │ https://x.com/evil/statu │       │\n'
    '│   │ s/1862345678901210003    │       │\n'
    '├───┼──────────────────────────┼───────┤\n'
    '│ 4 │ (unknown)                │    12 │\n'
    '│   │ مرحبا بالتعلم الآلي and  │       │\n'
    '│   │ שלום ML                  │       │\n'
    '│   │ https://x.com/i/status/1 │       │\n'
    '│   │ 862345678901200004       │       │\n'
    '╰───┴──────────────────────────┴───────╯\n'
    '      1,234 posts read in 13 pages\n'
    '             top 4 by likes\n'
)

TABLE_UNICODE_80 = (
    '                            Your weekly slice of ML\n'
    '                        02 Dec 12:00 – 09 Dec 11:59 UTC\n'
    '╭───┬──────────────────────────────────────────────────────────────────┬───────╮\n'
    '│ # │ Post                                                             │ Likes │\n'
    '├───┼──────────────────────────────────────────────────────────────────┼───────┤\n'
    '│ 1 │ @example_lab                                                     │ 1,894 │\n'
    '│   │ Our new paper on sparse attention & long context is out 🚀       │       │\n'
    '│   │ Code: https://t.co/example                                       │       │\n'
    '│   │ https://x.com/example_lab/status/1862345678901234567             │       │\n'
    '├───┼──────────────────────────────────────────────────────────────────┼───────┤\n'
    '│ 2 │ @zh_ml                                                           │    57 │\n'
    '│   │ 机器学习入门 — 从线性回归到神经网络 👩\u200d🔬                           │       │\n'
    '│   │ https://x.com/zh_ml/status/1862345678901220002                   │       │\n'
    '├───┼──────────────────────────────────────────────────────────────────┼───────┤\n'
    '│ 3 │ @evil                                                            │    40 │\n'
    '│   │ clearscreen tab                                                  │       │\n'
    '│   │ next ❤️ 🧵                                                       │       │\n'
    '│   │ https://x.com/evil/status/1862345678901210003                    │       │\n'
    '├───┼──────────────────────────────────────────────────────────────────┼───────┤\n'
    '│ 4 │ (unknown)                                                        │    12 │\n'
    '│   │ مرحبا بالتعلم الآلي and שלום ML                                  │       │\n'
    '│   │ https://x.com/i/status/1862345678901200004                       │       │\n'
    '╰───┴──────────────────────────────────────────────────────────────────┴───────╯\n'
    '                 1,234 posts read in 13 pages · top 4 by likes\n'
)

TABLE_UNICODE_120 = (
    '                                                Your weekly slice of ML\n'
    '                                            02 Dec 12:00 – 09 Dec 11:59 UTC\n'
    '╭───┬──────────────┬────────────────────────────────────┬──────────────────────────────────────────────────────┬───────╮\n'
    '│ # │ Author       │ Post                               │ Link                                                 │ Likes │\n'
    '├───┼──────────────┼────────────────────────────────────┼──────────────────────────────────────────────────────┼───────┤\n'
    '│ 1 │ @example_lab │ Our new paper on sparse attention  │ https://x.com/example_lab/status/1862345678901234567 │ 1,894 │\n'
    '│   │              │ & long context is out 🚀           │                                                      │       │\n'
    '│   │              │ Code: https://t.co/example         │                                                      │       │\n'
    '├───┼──────────────┼────────────────────────────────────┼──────────────────────────────────────────────────────┼───────┤\n'
    '│ 2 │ @zh_ml       │ 机器学习入门 — 从线性回归到神经网  │ https://x.com/zh_ml/status/1862345678901220002       │    57 │\n'
    '│   │              │ 络 👩\u200d🔬                              │                                                      │       │\n'
    '├───┼──────────────┼────────────────────────────────────┼──────────────────────────────────────────────────────┼───────┤\n'
    '│ 3 │ @evil        │ clearscreen tab                    │ https://x.com/evil/status/1862345678901210003        │    40 │\n'
    '│   │              │ next ❤️ 🧵                         │                                                      │       │\n'
    '├───┼──────────────┼────────────────────────────────────┼──────────────────────────────────────────────────────┼───────┤\n'
    '│ 4 │ (unknown)    │ مرحبا بالتعلم الآلي and שלום ML    │ https://x.com/i/status/1862345678901200004           │    12 │\n'
    '╰───┴──────────────┴────────────────────────────────────┴──────────────────────────────────────────────────────┴───────╯\n'
    '                                     1,234 posts read in 13 pages · top 4 by likes\n'
)

TABLE_ASCII_60 = (
    '                  Your weekly slice of ML\n'
    '              02 Dec 12:00 - 09 Dec 11:59 UTC\n'
    '+---+----------------------------------------------+-------+\n'
    '| # | Post                                         | Likes |\n'
    '+---+----------------------------------------------+-------+\n'
    '| 1 | @example_lab                                 | 1,894 |\n'
    '|   | Our new paper on sparse attention & long     |       |\n'
    '|   | context is out ?                             |       |\n'
    '|   | Code: https://t.co/example                   |       |\n'
    '|   | https://x.com/example_lab/status/18623456789 |       |\n'
    '|   | 01234567                                     |       |\n'
    '+---+----------------------------------------------+-------+\n'
    '| 2 | @zh_ml                                       |    57 |\n'
    '|   | ?????? ? ?????????? ?                        |       |\n'
    '|   | https://x.com/zh_ml/status/18623456789012200 |       |\n'
    '|   | 02                                           |       |\n'
    '+---+----------------------------------------------+-------+\n'
    '| 3 | @evil                                        |    40 |\n'
    '|   | clearscreen tab                              |       |\n'
    '|   | next ? ?                                     |       |\n'
    '|   | https://x.com/evil/status/186234567890121000 |       |\n'
    '|   | 3                                            |       |\n'
    '+---+----------------------------------------------+-------+\n'
    '| 4 | (unknown)                                    |    12 |\n'
    '|   | ????? ??????? ????? and ???? ML              |       |\n'
    '|   | https://x.com/i/status/1862345678901200004   |       |\n'
    '+---+----------------------------------------------+-------+\n'
    '       1,234 posts read in 13 pages - top 4 by likes\n'
)


class RenderTableTests(unittest.TestCase):
    maxDiff = None

    def render(self, width, unicode=True, color=False):
        style = sliceofml.Style(color=color, links=color, unicode=unicode,
                                encoding="utf-8" if unicode else "ascii")
        return sliceofml.render_table(HOSTILE_RESULT, style, width)

    def test_table_at_40_columns(self):
        self.assertEqual(self.render(40), "".join(TABLE_UNICODE_40))

    def test_table_at_80_columns(self):
        self.assertEqual(self.render(80), "".join(TABLE_UNICODE_80))

    def test_table_at_120_columns(self):
        self.assertEqual(self.render(120), "".join(TABLE_UNICODE_120))

    def test_ascii_table_at_60_columns(self):
        self.assertEqual(self.render(60, unicode=False), "".join(TABLE_ASCII_60))

    def test_every_width_fits(self):
        for width in (30, 40, 50, 60, 80, 100, 120, 160, 200):
            for unicode in (True, False):
                with self.subTest(width=width, unicode=unicode):
                    lines = self.render(width, unicode).splitlines()
                    widest = max(sliceofml.display_width(line) for line in lines)
                    self.assertLessEqual(widest, width)

    def test_generated_texts_fit_and_stay_clean(self):
        alphabet = ["a", "Z", " ", " ", "\n", "\t", "机", "ｍ", "🚀", "👩\u200d🔬", "❤\ufe0f", "e\u0301",
                    "\x1b", "[", "\x07", "\x9b", "\u202e", "\u2066", "ש", "م", "🇩🇪", "&amp;",
                    "https://example.com/a/very/long/path/without/any/spaces/at/all"]
        rng = random.Random(20261204)
        for trial in range(60):
            posts = []
            for index in range(rng.randint(0, 10)):
                text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
                name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))) or None
                posts.append(sliceofml.Post(str(1000 + index), name, text, rng.randint(0, 10 ** 7),
                                            0, "2026-11-30T08:00:00.000Z"))
            result = sliceofml.SliceResult(HOSTILE_RESULT.window, posts, 3, 250)
            width = rng.choice([40, 60, 80, 120, 200])
            output = sliceofml.render_table(result, sliceofml.Style(), width)
            with self.subTest(trial=trial, width=width):
                self.assertNotIn("\x1b", output)
                self.assertNotIn("\x07", output)
                self.assertNotIn("\x9b", output)
                self.assertNotIn("\u202e", output)
                for line in output.splitlines():
                    self.assertLessEqual(sliceofml.display_width(line), width)

    def test_colour_uses_only_our_sequences(self):
        output = self.render(120, color=True)
        ours = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;;[^\x1b]*\x1b\\")
        self.assertNotIn("\x1b", ours.sub("", output))
        self.assertIn("\x1b]8;;https://x.com/example_lab\x1b\\\x1b[36m@example_lab\x1b[0m\x1b]8;;\x1b\\",
                      output)
        self.assertIn("\x1b]8;;https://x.com/example_lab/status/1862345678901234567\x1b\\"
                      "\x1b[34;4mview\x1b[0m\x1b]8;;\x1b\\", output)
        plain = ours.sub("", output)
        for line in plain.splitlines():
            self.assertLessEqual(sliceofml.display_width(line), 120)

    def test_narrow_terminal_links_rank(self):
        output = self.render(40, color=True)
        self.assertIn("\x1b]8;;https://x.com/example_lab/status/1862345678901234567\x1b\\\x1b[2m1\x1b[0m",
                      output)
        self.assertNotIn("view", output)

    def test_no_posts(self):
        result = sliceofml.SliceResult(HOSTILE_RESULT.window, [], 1, 0)
        output = sliceofml.render_table(result, sliceofml.Style(), 60)
        self.assertIn("│ No machine-learning posts in this time window.", output)
        self.assertIn("0 posts read in 1 page", output)

    def test_caption_reports_budget_and_early_stop(self):
        result = sliceofml.SliceResult(HOSTILE_RESULT.window, HOSTILE_POSTS[:1], 100, 9876,
                                       stop_reason="timed out", budget_spent=True)
        output = sliceofml.render_table(result, sliceofml.Style(), 120)
        self.assertIn("9,876 posts read in 100 pages · top 1 by likes · page budget reached · stopped early",
                      output)


class StyleTests(unittest.TestCase):
    class Stream(object):
        def __init__(self, terminal, encoding="utf-8"):
            self.terminal = terminal
            self.encoding = encoding

        def isatty(self):
            return self.terminal

    def decide(self, terminal=True, encoding="utf-8", os_name="posix", kernel32=None, **environ):
        return sliceofml.decide_style(self.Stream(terminal, encoding), environ, os_name, kernel32)

    def test_terminal_gets_colour_and_links(self):
        style = self.decide(TERM="xterm-256color")
        self.assertTrue(style.color)
        self.assertTrue(style.links)

    def test_pipe_gets_none(self):
        self.assertFalse(self.decide(terminal=False).color)

    def test_force_color_on_pipe(self):
        self.assertTrue(self.decide(terminal=False, FORCE_COLOR="1").color)

    def test_no_color_wins(self):
        self.assertFalse(self.decide(NO_COLOR="1", FORCE_COLOR="1").color)

    def test_empty_no_color_ignored(self):
        self.assertTrue(self.decide(NO_COLOR="").color)

    def test_dumb_terminal_gets_none(self):
        self.assertFalse(self.decide(TERM="dumb").color)

    def test_encodings_choose_glyphs(self):
        self.assertTrue(self.decide(encoding="utf-8").unicode)
        self.assertFalse(self.decide(encoding="ascii").unicode)
        self.assertFalse(self.decide(encoding="cp1252").unicode)
        self.assertEqual(self.decide(encoding="cp437").glyphs["top"], ("┌", "─", "┬", "┐"))
        self.assertFalse(self.decide(encoding="no-such-codec").unicode)

    def test_windows_console_enabled(self):
        kernel32 = FakeKernel32(get_ok=True, set_ok=True)
        self.assertTrue(self.decide(os_name="nt", kernel32=kernel32).color)
        self.assertEqual(kernel32.mode_set, 0x0003 | 0x0004)

    def test_windows_console_refused(self):
        self.assertFalse(self.decide(os_name="nt", kernel32=FakeKernel32(get_ok=True, set_ok=False)).color)
        self.assertFalse(self.decide(os_name="nt", kernel32=FakeKernel32(get_ok=False, set_ok=True)).color)


class FakeKernel32(object):
    """Simulates the Windows console API calls that enable escape-sequence processing."""

    def __init__(self, get_ok, set_ok):
        self.get_ok = get_ok
        self.set_ok = set_ok
        self.mode_set = None

    def GetStdHandle(self, number):
        return 7

    def GetConsoleMode(self, handle, mode_pointer):
        mode_pointer.contents.value = 0x0003
        return 1 if self.get_ok else 0

    def SetConsoleMode(self, handle, mode):
        self.mode_set = mode
        return 1 if self.set_ok else 0


class NetrcTextEditTests(unittest.TestCase):
    """Exact results of the in-place editor on its own, before any file is involved."""

    MACHINE = "sliceofml@api.x.com"

    def edit(self, text, login="app", password="TOKEN"):
        return sliceofml.edit_netrc_text(text, self.MACHINE, login, password)

    def remove(self, text):
        return sliceofml.edit_netrc_text(text, self.MACHINE)

    def test_empty_text(self):
        self.assertEqual(self.edit(""), "machine sliceofml@api.x.com login app password TOKEN\n")

    def test_append_after_missing_newline(self):
        self.assertEqual(self.edit("machine a login b password c"),
                         "machine a login b password c\nmachine sliceofml@api.x.com login app password TOKEN\n")

    def test_crlf_file_gets_crlf(self):
        self.assertEqual(self.edit("machine a login b password c\r\n"),
                         "machine a login b password c\r\nmachine sliceofml@api.x.com login app password TOKEN\r\n")

    def test_insert_before_default(self):
        text = "machine a login b password c\n# fallback\ndefault login anonymous password guest\n"
        self.assertEqual(self.edit(text),
                         "machine a login b password c\n# fallback\n"
                         "machine sliceofml@api.x.com login app password TOKEN\n"
                         "default login anonymous password guest\n")

    def test_open_macro_gets_blank_line(self):
        text = "machine a login b password c\nmacdef init\ncd /pub\n"
        self.assertEqual(self.edit(text), text + "\nmachine sliceofml@api.x.com login app password TOKEN\n")

    def test_replace_three_line_entry_in_place(self):
        text = "machine a login b password c\nmachine sliceofml@api.x.com\n\tlogin Old\n\tpassword OLD\nmachine d login e password f\n"
        self.assertEqual(self.edit(text),
                         "machine a login b password c\nmachine sliceofml@api.x.com login app password TOKEN\n"
                         "machine d login e password f\n")

    def test_duplicates_collapse_to_first(self):
        text = ("machine sliceofml@api.x.com login A password FIRST\nmachine g login d password p\n"
                "machine sliceofml@api.x.com login B password SECOND\n")
        self.assertEqual(self.edit(text),
                         "machine sliceofml@api.x.com login app password TOKEN\nmachine g login d password p\n")
        self.assertEqual(self.remove(text), "machine g login d password p\n")

    def test_entry_sharing_a_line(self):
        text = "machine a login b password c machine sliceofml@api.x.com login A password T\n"
        self.assertEqual(self.remove(text), "machine a login b password c\n")

    def test_lookalikes_untouched(self):
        text = ("machine sliceofml@api.x.com.example login a password b\nmachine api.x.com login c password d\n"
                "machine xsliceofml@api.x.com login e password f\n")
        self.assertEqual(self.remove(text), text)
        self.assertEqual(self.edit(text), text + "machine sliceofml@api.x.com login app password TOKEN\n")

    def test_comment_after_entry_kept(self):
        text = "machine sliceofml@api.x.com login A password T # ours\n# next\nmachine g login d password p\n"
        self.assertEqual(self.remove(text), "# ours\n# next\nmachine g login d password p\n")

    def test_macro_body_not_read_as_entry(self):
        text = "macdef init\nmachine sliceofml@api.x.com login A password T\n\nmachine g login d password p\n"
        self.assertEqual(self.remove(text), text)


class NetrcValueTests(unittest.TestCase):
    def test_rejected_values(self):
        cases = {
            "my app": "the app name contains a space",
            "": "the app name is empty",
            "quo\"te": "the app name contains '\"'",
            "back\\slash": "the app name contains '\\\\'",
            "#hash": "the app name starts with '#'",
            "tab\tname": "the app name contains the character '\\t'",
            "naïve": "the app name contains the character 'ï'",
        }
        for value, message in cases.items():
            with self.subTest(value=value):
                with self.assertRaises(sliceofml.UsageError) as caught:
                    sliceofml.validate_netrc_value("app name", value)
                self.assertIn(message, str(caught.exception))

    def test_accepted_values(self):
        for value in ("sliceofml", "my-app_2", "AAAA%2Fx%3Dy", "pa#ss"):
            sliceofml.validate_netrc_value("token", value)


class NetrcPathTests(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.home)

    def test_netrc_variable_wins(self):
        path = sliceofml.default_netrc_path({"NETRC": "/tmp/other", "HOME": self.home}, "posix")
        self.assertEqual(path, "/tmp/other")

    def test_posix_home(self):
        path = sliceofml.default_netrc_path({"HOME": self.home}, "posix")
        self.assertEqual(path, os.path.join(self.home, ".netrc"))

    def test_windows_uses_underscore_file(self):
        open(os.path.join(self.home, "_netrc"), "w").close()
        path = sliceofml.default_netrc_path({"USERPROFILE": self.home}, "nt")
        self.assertEqual(path, os.path.join(self.home, "_netrc"))

    def test_windows_prefers_dotted_file(self):
        open(os.path.join(self.home, "_netrc"), "w").close()
        open(os.path.join(self.home, ".netrc"), "w").close()
        path = sliceofml.default_netrc_path({"USERPROFILE": self.home}, "nt")
        self.assertEqual(path, os.path.join(self.home, ".netrc"))

    def test_windows_new_file_is_dotted(self):
        path = sliceofml.default_netrc_path({"USERPROFILE": self.home}, "nt")
        self.assertEqual(path, os.path.join(self.home, ".netrc"))

    def test_lock_file_without_fcntl(self):
        path = os.path.join(self.home, ".netrc")
        with open(path, "w") as stream:
            stream.write("machine g login d password p\n")
        changed = sliceofml.update_netrc(path, "sliceofml@api.x.com", "app", "TOKEN", use_fcntl=False)
        self.assertTrue(changed)
        with open(path) as stream:
            self.assertEqual(stream.read(),
                             "machine g login d password p\nmachine sliceofml@api.x.com login app password TOKEN\n")
        self.assertEqual(sorted(os.listdir(self.home)), [".netrc"])

    def test_lock_file_held_elsewhere_times_out(self):
        path = os.path.join(self.home, ".netrc")
        open(path + ".lock", "w").close()
        lock = sliceofml._DirectoryLock(self.home, path, use_fcntl=False, timeout=0.2)
        with self.assertRaises(sliceofml.NetrcError) as caught:
            lock.__enter__()
        self.assertIn("remove the lock file", str(caught.exception))


class OldPythonTests(unittest.TestCase):
    def test_old_python_message(self):
        found = 0
        for version in ("3.6", "3.7"):
            binary = find_python(version)
            if binary is None:
                continue
            found += 1
            completed = subprocess.run([binary, SLICEOFML_PATH, "--version"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
            self.assertEqual(completed.returncode, 1)
            self.assertEqual(completed.stdout, "")
            self.assertEqual(completed.stderr, "sliceofml needs Python 3.8 or newer (this is %s)\n" % version)
        if not found:
            self.skipTest("no Python 3.6 or 3.7 on this machine")


class MainTests(unittest.TestCase):
    def run_main(self, argv, **environ):
        stdout, stderr = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, environ), mock.patch.object(sys, "stdout", stdout), \
                mock.patch.object(sys, "stderr", stderr):
            code = sliceofml.main(argv)
        return code, stdout.getvalue(), stderr.getvalue()

    def test_version(self):
        self.assertEqual(self.run_main(["--version"]), (0, "sliceofml %s\n" % sliceofml.__version__, ""))

    def test_no_command(self):
        code, out, err = self.run_main([])
        self.assertEqual(code, 2)
        self.assertEqual(err, "sliceofml: error: choose a command: login, slice, status or logout "
                              "(see `sliceofml.py --help`)\n")

    def test_bad_option_value(self):
        code, out, err = self.run_main(["slice", "--top", "0"])
        self.assertEqual(code, 2)
        self.assertEqual(err, "sliceofml: error: argument --top: 0 is not between 1 and 100 "
                              "(see `sliceofml.py slice --help`)\n")

    def test_daily_and_weekly_exclusive(self):
        code, out, err = self.run_main(["slice", "--daily", "--weekly"])
        self.assertEqual(code, 2)
        self.assertIn("not allowed with argument", err)

    def test_plain_http_rejected_for_remote_host(self):
        code, out, err = self.run_main(["status"], SLICEOFML_API_URL="http://example.invalid")
        self.assertEqual(code, 2)
        self.assertIn("http://, which is accepted only for loopback hosts", err)

    def test_interrupt_exits_130(self):
        with mock.patch.object(sliceofml, "find_credentials", side_effect=KeyboardInterrupt):
            code, out, err = self.run_main(["slice"])
        self.assertEqual(code, 130)
        self.assertEqual(err, "\nsliceofml: interrupted\n")

    def test_unexpected_error_one_line(self):
        with mock.patch.object(sliceofml, "find_credentials", side_effect=ZeroDivisionError("boom")):
            code, out, err = self.run_main(["slice"])
        self.assertEqual(code, 1)
        self.assertEqual(err, "sliceofml: error: unexpected ZeroDivisionError: boom "
                              "(run with --debug for the traceback)\n")

    def test_debug_shows_traceback(self):
        with mock.patch.object(sliceofml, "find_credentials", side_effect=ZeroDivisionError("boom")):
            code, out, err = self.run_main(["--debug", "slice"])
        self.assertEqual(code, 1)
        self.assertIn("Traceback (most recent call last)", err)

    def test_debug_after_command(self):
        with mock.patch.object(sliceofml, "find_credentials", side_effect=ZeroDivisionError("boom")):
            code, out, err = self.run_main(["slice", "--debug"])
        self.assertIn("Traceback (most recent call last)", err)

    def test_bad_retry_delay(self):
        code, out, err = self.run_main(["slice"], SLICEOFML_BEARER_TOKEN="x" * 20,
                                       SLICEOFML_API_URL="http://127.0.0.1:9", SLICEOFML_RETRY_DELAY="soon")
        self.assertEqual(code, 2)
        self.assertIn("SLICEOFML_RETRY_DELAY 'soon' is not a number of seconds", err)


# ==============================================================================================
# Running the suite on every Python
# ==============================================================================================

SUPPORTED_MINORS = range(8, 14)


def run_all_pythons():
    """Run this file's suite on every CPython 3.8 to 3.13 found; return the exit code.

    Prints one summary line per version and a closing `N passed, N failed` line. Fails when a
    version fails or when fewer than two versions were found.
    """
    found = find_pythons(SUPPORTED_MINORS)
    if len(found) < 2:
        print("found %d CPython version(s) between 3.8 and 3.13; at least 2 are needed" % len(found))
        return 1
    results = {}

    def run(key):
        binary, version = found[key]
        started = time.monotonic()
        completed = subprocess.run([binary, os.path.join(HERE, "test_sliceofml.py")],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   universal_newlines=True, cwd=HERE)
        results[key] = (completed, time.monotonic() - started)

    keys = sorted(found)
    # Two suites at a time on a two-core machine keeps timing-sensitive tests honest.
    pending = list(keys)
    while pending:
        batch, pending = pending[:2], pending[2:]
        threads = [threading.Thread(target=run, args=(key,)) for key in batch]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    total_passed = total_failed = total_skipped = 0
    for key in keys:
        completed, seconds = results[key]
        counts = _unittest_counts(completed.stdout)
        passed, failed, skipped = counts
        total_passed += passed
        total_failed += failed
        total_skipped += skipped
        verdict = "ok" if completed.returncode == 0 else "FAILED"
        print("Python %s: %d passed, %d failed, %d skipped in %.1f s (%s)"
              % (".".join(map(str, found[key][1])), passed, failed, skipped, seconds, verdict))
        if completed.returncode != 0:
            if failed == 0:
                total_failed += 1
            print(completed.stdout[-6000:])
    print("%d passed, %d failed, %d skipped" % (total_passed, total_failed, total_skipped))
    return 0 if total_failed == 0 else 1


def _unittest_counts(output):
    """Return (passed, failed, skipped) from unittest's closing lines."""
    ran = re.search(r"^Ran (\d+) tests?", output, re.M)
    total = int(ran.group(1)) if ran else 0
    failed = skipped = 0
    summary = re.search(r"^(?:OK|FAILED) ?\((.*)\)$", output, re.M)
    if summary:
        for name, number in re.findall(r"(\w+)=(\d+)", summary.group(1)):
            if name in ("failures", "errors", "unexpected successes"):
                failed += int(number)
            elif name == "skipped":
                skipped = int(number)
    return total - failed - skipped, failed, skipped


if __name__ == "__main__":
    if sys.argv[1:] == ["--all-pythons"]:
        sys.exit(run_all_pythons())
    if sys.argv[1:2] == ["demo"]:
        sys.exit(demo(sys.argv[2:]))
    if sys.argv[1:2] == ["bench"]:
        sys.exit(bench(sys.argv[2:]))
    unittest.main()
