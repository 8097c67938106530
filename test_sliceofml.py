#!/usr/bin/env python3
"""Tests for sliceofml, the fake X API they run against, and the demo and benchmark.

    python3 test_sliceofml.py                 # the suite on this Python
    python3 test_sliceofml.py --all-pythons   # the suite on every CPython 3.8 to 3.13 found
    python3 test_sliceofml.py demo            # the weekly table from the fake X API
    python3 test_sliceofml.py bench           # start-up, fetch and rendering figures

Everything here talks only to servers it starts on 127.0.0.1.
"""

import base64
import calendar
import collections
import datetime
import doctest
import email.utils
import glob
import gzip
import hashlib
import http.server
import io
import json
import netrc
import os
import platform
import random
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
import urllib.parse
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
SLICEOFML_PATH = os.path.join(HERE, "sliceofml.py")
sys.path.insert(0, HERE)

import sliceofml  # noqa: E402  (the path above makes the module next to this file importable)

TOOL_PRESENT = os.path.exists(SLICEOFML_PATH)


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
    """Return a binary of Python `version` ("2.7", "3.6"), or None."""
    major, minor = (int(part) for part in version.split("."))
    if major == 3:
        found = find_pythons([minor])
        return found[(3, minor)][0] if (3, minor) in found else None
    root = pyenv_root()
    candidates = sorted(glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python" + version))) if root else []
    candidates.append(shutil.which("python" + version))
    for binary in candidates:
        if binary and (python_version(binary) or ())[:2] == (major, minor):
            return binary
    return None

# ---------------------------------------------------------------------------------------------------
# Constants of the X API
# ---------------------------------------------------------------------------------------------------

ML_CONTEXT = "66.898661583827615744"      # domain 66 (Interests and Hobbies), entity "Machine learning"
CATS_CONTEXT = "66.852262932607926273"    # same domain, entity "Cats"
SEARCH_PATH = "/2/tweets/search/recent"
TOKEN_PATH = "/oauth2/token"
PROBLEMS = "https://api.x.com/2/problems/"
RATE_LIMIT = 450                          # recent search, app-only bearer token, per 15 minutes
RATE_WINDOW = 15 * 60
SEVEN_DAYS = 7 * 24 * 3600
TWITTER_EPOCH_MS = 1288834974657          # start of the snowflake id clock

SEARCH_PARAMETERS = (
    "query", "start_time", "end_time", "since_id", "until_id", "max_results", "next_token",
    "pagination_token", "sort_order", "expansions", "tweet.fields", "user.fields", "media.fields",
    "place.fields", "poll.fields",
)
TWEET_FIELDS = (
    "article", "attachments", "author_id", "card_uri", "community_id", "context_annotations",
    "conversation_id", "created_at", "display_text_range", "edit_controls", "edit_history_tweet_ids",
    "entities", "geo", "id", "in_reply_to_user_id", "lang", "media_metadata", "non_public_metrics",
    "note_tweet", "organic_metrics", "possibly_sensitive", "promoted_metrics", "public_metrics",
    "referenced_tweets", "reply_settings", "scopes", "source", "text", "withheld",
)
EXPANSIONS = (
    "article.cover_media", "article.media_entities", "attachments.media_keys",
    "attachments.media_source_tweet", "attachments.poll_ids", "author_id",
    "edit_history_tweet_ids", "entities.mentions.username", "geo.place_id", "in_reply_to_user_id",
    "entities.note.mentions.username", "referenced_tweets.id", "referenced_tweets.id.attachments.media_keys",
    "referenced_tweets.id.author_id",
)

UNAUTHORIZED_BODY = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOKEN_ERROR_BODY = {"errors": [{"code": 99, "label": "authenticity_token_error",
                                "message": "Unable to verify your credentials"}]}
TOO_MANY_BODY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                 "status": 429}
USAGE_CAPPED_BODY = {"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap",
                     "type": PROBLEMS + "usage-capped", "period": "Monthly", "scope": "Product"}
CLIENT_FORBIDDEN_BODY = {
    "client_id": "00000000",
    "detail": "When authenticating requests to the X API v2 endpoints, you must use keys and tokens "
              "from an App that is attached to a Project.",
    "registration_url": "https://developer.x.com/en/docs/projects/overview",
    "title": "Client Forbidden",
    "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled",
    "type": PROBLEMS + "client-forbidden",
}
SERVICE_UNAVAILABLE_BODY = {"title": "Service Unavailable", "detail": "Service Unavailable",
                            "type": "about:blank", "status": 503}
INTERNAL_ERROR_BODY = {"title": "Internal Server Error", "detail": "Internal Server Error",
                       "type": "about:blank", "status": 500}
HTML_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")
NOT_FOUND_BODY = {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}

# ---------------------------------------------------------------------------------------------------
# Time helpers
# ---------------------------------------------------------------------------------------------------

_STRICT_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")
_LOOSE_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]00:?00)$")


def format_time(seconds):
    """Format Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def format_created_at(seconds):
    """Format Unix seconds the way the API writes `created_at` (with milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(int(seconds)))


def parse_strict_time(text):
    """Parse `YYYY-MM-DDTHH:MM:SSZ` into Unix seconds, or return None when the text has another shape."""
    match = _STRICT_TIME.match(text)
    if not match:
        return None
    try:
        moment = datetime.datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None
    return calendar.timegm(moment.timetuple())


def parse_time(value):
    """Parse an RFC 3339 UTC time (seconds, milliseconds or minutes precision) into Unix seconds.

    Numbers pass through, so callers can hand in either form.
    """
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, datetime.datetime):
        return calendar.timegm(value.utctimetuple())
    match = _LOOSE_TIME.match(value.strip())
    if not match:
        raise ValueError("not an RFC 3339 UTC time: %r" % (value,))
    year, month, day, hour, minute, second, fraction, _zone = match.groups()
    moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    return calendar.timegm(moment.timetuple()) + (float(fraction) if fraction else 0)


def snowflake_id(seconds, sequence):
    """Return a 19-digit post id that grows with the creation time, like X's snowflake ids."""
    milliseconds = int(seconds) * 1000 + sequence % 1000
    return ((milliseconds - TWITTER_EPOCH_MS) << 22) | ((sequence * 4099) % (1 << 22))


def x_escape(text):
    """Escape text the way X does in `text`: only &, < and > become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------------------------------
# Generated posts
# ---------------------------------------------------------------------------------------------------

_USER_WORDS = ["gradient", "tensor", "kernel", "bayes", "attention", "dropout", "epoch", "sparse",
               "latent", "embedding", "diffusion", "residual", "softmax", "adam", "lstm", "prior"]
_DISPLAY_NAMES = ["Ada Lab", "Zoë Ng", "李雷", "נועה כהן", "محمد علي", "Ola Nordmann", "Jürgen M.",
                  "Priya R", "Sam 🤖 Bot", "Ren Aoki", "Élodie", "Tomás"]
_SUBJECTS = ["Our new paper on sparse attention", "A thread on why your loss curve looks like that",
             "Benchmarking small language models", "Notes from the reading group",
             "Diffusion models, explained without the math", "We open-sourced the training code",
             "Gradient checkpointing saved us 40% memory", "Evaluation sets leak more than you think",
             "Tabular data still loves gradient boosting", "Tiny transformer on a microcontroller"]
_TAILS = [" &  baselines 📈", " (p < 0.05, n > 1000)", "\nCode: https://t.co/example", "\tTL;DR inside 🧵",
          " ❤️ thanks to everyone", " — 机器学习 study notes", " مع الشكر", " תודה רבה", " 👩‍🔬👨‍💻",
          "", "", " <3", " R&D team", "\n\n1/ let's go"]
_CAT_TEXTS = ["My cat sat on the keyboard and trained a model 🐈", "Caturday: 12 photos of loaves",
              "Cats & boxes, a love story"]


class _Post(object):
    """One generated post, with the text as the author typed it and as the API sends it."""

    def __init__(self, seconds, sequence, author_id, raw_text, context, likes, retweets,
                 is_retweet=False, long_form=False):
        self.created = int(seconds)
        self.id = str(snowflake_id(seconds, sequence))
        self.number = int(self.id)
        self.author_id = author_id
        self.raw_text = raw_text            # what the author typed; the decoded full text
        self.context = context
        self.likes = likes
        self.retweets = retweets
        self.is_retweet = is_retweet
        self.note_text = None
        if long_form:
            cut = raw_text[:270].rstrip()
            self.api_text = x_escape(cut) + "\u2026"
            # NOTE: we assume note_tweet.text is HTML-escaped like text; public examples show entities
            # in text, and none we found show a long post holding &, < or >.
            self.note_text = x_escape(raw_text)
        elif is_retweet:
            self.api_text = raw_text            # already built from escaped pieces
        else:
            self.api_text = x_escape(raw_text)

    def as_json(self, fields, expand_author):
        """Return the post as the API writes it for the requested tweet.fields and expansions."""
        body = {"id": self.id, "edit_history_tweet_ids": [self.id]}
        if "author_id" in fields or expand_author:
            body["author_id"] = self.author_id
        if "created_at" in fields:
            body["created_at"] = format_created_at(self.created)
        body["text"] = self.api_text
        if "note_tweet" in fields and self.note_text is not None:
            body["note_tweet"] = {"text": self.note_text}
        if "public_metrics" in fields:
            body["public_metrics"] = {
                "retweet_count": self.retweets,
                "reply_count": (self.likes // 17) % 50,
                "like_count": self.likes,
                "quote_count": self.retweets // 9,
                "bookmark_count": self.likes // 5,
                "impression_count": self.likes * 40 + 311,
            }
        return body


def _build_users(rng, count=40, missing=(5, 17, 29)):
    users = []
    for index in range(count):
        user_id = str(1400000000 + index * 7919 + rng.randrange(7000))
        username = "%s_%s%02d" % (rng.choice(_USER_WORDS), rng.choice(_USER_WORDS)[:3], index)
        users.append({"id": user_id, "name": _DISPLAY_NAMES[index % len(_DISPLAY_NAMES)],
                      "username": username, "missing": index in missing})
    return users


# Posts placed on purpose, so that both windows have ties, entities, long posts and a missing author
# among their top ten. Each: (label, seconds before now, likes, retweets, author index, text or None).
_DAY = 86400
_LONG_TEXT = ("Long post on evaluation & why the test set matters more than the model <really>. "
              "Most leaderboard gains we re-ran came from leakage between train and test splits, "
              "prompt formats tuned on the test set, or a lucky seed. Three habits fixed it for us: "
              "freeze the test set before the first experiment, report the spread over five seeds, "
              "and keep one held-out set that nobody looks at until the paper is written. "
              "End of the long post.")
_FEATURED = [
    ("amp_literal", 3 * 3600 + 11, 9000, 300, 1,
     'To write the entity in a post you type "&amp;" literally; R&D says x < y > z'),
    ("note_tweet", 4 * 3600 + 7, 8000, 250, 2, _LONG_TEXT),
    ("missing_author", 5 * 3600 + 3, 7000, 200, 5, "Our RL agent learned to pause the game & then never lose"),
    ("emoji", 6 * 3600 + 19, 6000, 150, 3,
     "Lab day 👩\u200d🔬 fine-tuning ❤\ufe0f thread 🧵\nStep 1:\tclean the data"),
    ("scripts", 7 * 3600 + 23, 5500, 140, 4, "机器学习 入门 · تعلم الآلة · למידת מכונה"),
    # Same likes, differing retweets; the most retweeted one is the oldest.
    ("tie_a1", 9 * 3600 + 1, 5000, 40, 6, "Sparse attention at a million tokens, explained in one diagram"),
    ("tie_a2", 8 * 3600 + 1, 5000, 30, 7, "Why your loss curve has that bump at step 10k"),
    ("tie_a3", 2 * 3600 + 1, 5000, 20, 8, "We open-sourced our evaluation harness today"),
    # Same likes and retweets, differing created_at.
    ("tie_b1", 10 * 3600 + 5, 4500, 12, 9, "Small models, big data: notes from a week of ablations"),
    ("tie_b2", 1 * 3600 + 5, 4500, 12, 10, "A visual guide to mixture-of-experts routing"),
    # Weekly only.
    ("weekly_top", 3 * _DAY + 500, 15000, 900, 11, "Our new paper on sparse attention & long context is out 🧵"),
    ("tie_c1", 5 * _DAY + 100, 12000, 70, 12, "Diffusion models from scratch in 200 lines of NumPy"),
    ("tie_c2", 4 * _DAY + 100, 12000, 60, 13, "The bitter lesson, revisited with this year's numbers"),
    ("tie_c3", 2 * _DAY + 100, 12000, 50, 14, "Quantization to 4 bits without losing accuracy: what worked"),
    ("tie_d1", 6 * _DAY + 100, 11000, 33, 15, "Reading group: attention is (still) all you need?"),
    ("tie_d2", 1 * _DAY + 7200, 11000, 33, 16, "Tokenizers are where bugs hide. A checklist"),
    ("day_boundary", _DAY + 90, 30000, 800, 17, "Scaling laws for small models, a thread from yesterday"),
    # Outside every window a client may ask for, or excluded by the query.
    ("too_old", 7 * _DAY + 3600, 60000, 999, 18, "Older than seven days"),
    ("too_new", 5, 40000, 999, 19, "Newer than any end_time the API accepts"),
]
_FEATURED_CATS = ("cats_top", 2 * 3600 + 30, 50000, 999, 20, "Cats & more cats: not machine learning")


class PostStore(object):
    """Posts generated from a seed relative to `now`, newest first, with their authors."""

    def __init__(self, now, seed=1, count=600, too_new=True):
        rng = random.Random(seed)
        self.now = int(now)
        self.users = _build_users(rng)
        self.users_by_id = {user["id"]: user for user in self.users}
        self.featured = {}
        entries = []          # (seconds before now, kind, likes, retweets, author index, text, label)
        used_offsets = set()
        for label, offset, likes, retweets, author, text in _FEATURED + [_FEATURED_CATS]:
            if label == "too_new" and not too_new:
                continue
            if label.startswith("cats"):
                kind = "cats"
            elif label == "note_tweet":
                kind = "long"
            else:
                kind = "ml"
            entries.append((offset, kind, likes, retweets, author, text, label))
            used_offsets.add(offset)
        random_count = max(count - len(entries), 0)
        pool = [offset for offset in rng.sample(range(20, 8 * _DAY), random_count + len(used_offsets))
                if offset not in used_offsets][:random_count]
        for offset in pool:
            roll = rng.random()
            if roll < 0.12:
                kind = "retweet"
            elif roll < 0.22:
                kind = "cats"
            else:
                kind = "ml"
            likes = min(int(rng.paretovariate(0.9) * 8) - 8, 2900)
            retweets = min(int(likes * rng.uniform(0.0, 0.3)) + rng.randrange(3), 2000)
            if rng.random() < 0.15:
                likes = rng.choice([42, 100, 256])    # common values, for ties among ordinary posts
            author = rng.randrange(len(self.users))
            entries.append((offset, kind, likes, retweets, author, None, None))
        entries.sort(key=lambda entry: entry[0])      # newest first
        self.posts = []
        for sequence, (offset, kind, likes, retweets, author, text, label) in enumerate(entries):
            seconds = self.now - offset
            author_id = self.users[author]["id"]
            if text is None:
                text = self._random_text(rng, kind)
            if kind == "retweet":
                original = self.users[(author + 3) % len(self.users)]["username"]
                text = "RT @%s: %s\u2026" % (original, x_escape(text)[:100])
                post = _Post(seconds, sequence, author_id, text, ML_CONTEXT, 0, retweets + 50,
                             is_retweet=True)
            else:
                context = CATS_CONTEXT if kind == "cats" else ML_CONTEXT
                post = _Post(seconds, sequence, author_id, text, context, likes, retweets,
                             long_form=(kind == "long"))
            self.posts.append(post)
            if label:
                self.featured[label] = post.id
        self.posts.sort(key=lambda post: post.number, reverse=True)
        self.by_id = {post.id: post for post in self.posts}

    @staticmethod
    def _random_text(rng, kind):
        if kind == "cats":
            return rng.choice(_CAT_TEXTS)
        return rng.choice(_SUBJECTS) + rng.choice(_TAILS) + rng.choice(_TAILS)


# ---------------------------------------------------------------------------------------------------
# The fake API
# ---------------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised inside a handler to end it without a further response."""


class FakeXAPI(object):
    """A fake X API (token endpoint and recent search) on 127.0.0.1, one thread per request.

    Quirks of the real API are on by default: `missing_authors` (authors left out of includes.users,
    with a partial error), `empty_pages` (a page with no posts but a next_token), and `repeat_last`
    (the last post of a page starts the next page). `latency` delays each search response (seconds).
    `clock_offset` moves the fake's clock (seconds) relative to this machine's. `rate_limit_remaining`
    is the starting remaining count of the first 15-minute window; `report_remaining`, when set, is
    sent in x-rate-limit-remaining on every response instead of the real count, without a 429.
    `too_new=False` leaves out the post created just before the fake started.
    """

    def __init__(self, key="demo-key", secret="demo-secret", seed=1, posts=600, missing_authors=True,
                 empty_pages=True, repeat_last=True, latency=0.0, clock_offset=0.0,
                 rate_limit_remaining=RATE_LIMIT, report_remaining=None, too_new=True):
        self.key = key
        self.secret = secret
        self.missing_authors = missing_authors
        self.empty_pages = empty_pages
        self.repeat_last = repeat_last
        self.latency = latency
        self.clock_offset = clock_offset
        self.report_remaining = report_remaining
        self.seed = seed
        self.post_count = posts
        # The post 5 s older than the fake's start checks that clients stay within end_time. In a
        # fake that runs for long, it falls inside the window and tops every table.
        self.too_new = too_new
        self.now = int(self.clock())
        self.store = PostStore(self.now, seed=seed, count=posts, too_new=too_new)
        self.token = self._make_bearer_token(key, secret)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._first_remaining = rate_limit_remaining
        self._next_tokens = {}
        self._server = None
        self._thread = None
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self):
        """Start serving on 127.0.0.1 with a free port; return self."""
        self._stopping.clear()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FakeXAPI", daemon=True)
        self._thread.start()
        return self

    def renew(self):
        """Generate the posts again around the current time, as if the fake had just started.

        The posts are placed relative to the start, so a fake left running for minutes would
        otherwise let its "newer than end_time" decoy drift into the daily window.
        """
        store = PostStore(int(self.clock()), seed=self.seed, count=self.post_count, too_new=self.too_new)
        with self._lock:
            self.now = store.now
            self.store = store
            self._next_tokens = {}

    def stop(self):
        """Stop serving and cut short any stalled or delayed response."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def url(self):
        """The base URL, `http://127.0.0.1:PORT`."""
        return "http://127.0.0.1:%d" % self._server.server_address[1]

    def clock(self):
        """Return the fake server's time in Unix seconds."""
        return time.time() + self.clock_offset

    def reset(self):
        """Forget recorded requests and scripted faults and refill the rate limit."""
        with getattr(self, "_lock", threading.Lock()):
            self.requests = []
            self._faults_by_number = {}
            self._fault_queue = []
            self._search_count = 0
            self._in_flight = 0
            self.max_in_flight = 0
            self._rate_window = None
            self._rate_used = 0

    # -- faults ----------------------------------------------------------------------------------

    def fail(self, nth, fault):
        """Script a fault for the nth search request (1-based), or for the next one when nth is None.

        A fault is one of:
          ("status", code, body, headers): respond with that status; body is a dict (JSON), a str
              (text/plain), or a callable taking the request's query dict; headers (optional) override
              the rate-limit headers, and a callable header value is called when the fault fires;
          "html502": a proxy's 502 page in text/html;
          "reset": close the connection without an answer (TCP reset);
          ("stall", seconds): wait that long (default 3 s), then answer normally;
          "truncate": send half of the normal JSON body with the full Content-Length, then close;
          ("redirect", base_url): 302 to base_url plus the request's path and query.
        """
        with self._lock:
            if nth is None:
                self._fault_queue.append(fault)
            else:
                self._faults_by_number.setdefault(nth, []).append(fault)

    def _take_fault(self, number):
        with self._lock:
            scripted = self._faults_by_number.get(number)
            if scripted:
                return scripted.pop(0)
            if self._fault_queue:
                return self._fault_queue.pop(0)
        return None

    # -- what tests read -------------------------------------------------------------------------

    def search_requests(self):
        """Return the recorded search requests in arrival order."""
        return [request for request in self.requests if request["path"] == SEARCH_PATH]

    def token_requests(self):
        """Return the recorded token requests in arrival order."""
        return [request for request in self.requests if request["path"] == TOKEN_PATH]

    @property
    def featured(self):
        """Ids of the posts placed on purpose, by label (see _FEATURED)."""
        return self.store.featured

    def post(self, post_id):
        """Return the generated post with this id."""
        return self.store.by_id[post_id]

    def expected_text(self, post_id):
        """Return the full, decoded text a client should show for this post."""
        return self.store.by_id[post_id].raw_text

    def username(self, post_id):
        """Return the username the API expands for this post's author, or None when it is missing."""
        author_id = self.store.by_id[post_id].author_id
        user = self.store.users_by_id[author_id]
        if user["missing"] and self.missing_authors:
            return None
        return user["username"]

    def matching_posts(self, start_time, end_time):
        """Return the machine-learning posts that are not retweets with start <= created_at < end."""
        start = parse_time(start_time)
        end = parse_time(end_time)
        return [post for post in self.store.posts
                if post.context == ML_CONTEXT and not post.is_retweet and start <= post.created < end]

    def expected_top(self, start_time, end_time, n=10):
        """Return the ids of the n most liked matching posts: likes, then retweets, then newest first."""
        posts = self.matching_posts(start_time, end_time)
        posts.sort(key=lambda post: (-post.likes, -post.retweets, -post.created, -post.number))
        return [post.id for post in posts[:n]]

    # -- tokens ----------------------------------------------------------------------------------

    @staticmethod
    def _make_bearer_token(key, secret):
        digest = hashlib.sha256(("%s\n%s" % (key, secret)).encode("utf-8")).digest()
        body = base64.b64encode(digest + digest[::-1]).decode("ascii")
        body = body.replace("+", "x").replace("/", "y").rstrip("=")
        return "AAAAAAAAAAAAAAAAAAAAA%s%%2F%s%%3D%s" % (body[:20], body[20:44], body[44:])

    def _next_token_for(self, position, inclusive, page_number, empty_done):
        state = (position, inclusive, page_number, empty_done)
        digest = hashlib.sha1(repr(state).encode("ascii")).digest()
        number = int.from_bytes(digest, "big")
        alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
        token = ""
        while len(token) < 30:
            number, digit = divmod(number, 36)
            token += alphabet[digit]
        with self._lock:
            self._next_tokens[token] = state
        return token

    # -- rate limit ------------------------------------------------------------------------------

    def _rate_limit_headers(self, consume):
        """Return the rate-limit headers, counting this request when consume; set 'exhausted'."""
        now = self.clock()
        window = int(now // RATE_WINDOW) * RATE_WINDOW
        with self._lock:
            if self._rate_window is None:
                self._rate_window = window
                limit_now = self._first_remaining
            elif window != self._rate_window:
                self._rate_window = window
                self._rate_used = 0
                self._first_remaining = RATE_LIMIT
                limit_now = RATE_LIMIT
            else:
                limit_now = self._first_remaining
            exhausted = consume and self._rate_used >= limit_now
            if consume and not exhausted:
                self._rate_used += 1
            remaining = max(limit_now - self._rate_used, 0)
        if self.report_remaining is not None:
            remaining = self.report_remaining
            exhausted = False
        headers = {"x-rate-limit-limit": str(RATE_LIMIT), "x-rate-limit-remaining": str(remaining),
                   "x-rate-limit-reset": str(window + RATE_WINDOW)}
        return headers, exhausted

    # -- request handling ------------------------------------------------------------------------

    def _sleep(self, seconds):
        """Sleep, but wake up when the fake stops. Return True when stopping."""
        return self._stopping.wait(seconds)

    def handle_token(self, handler, record):
        headers, _ = self._rate_limit_headers(consume=False)
        if handler.command != "POST":
            return handler.answer(405, NOT_FOUND_BODY, headers)
        credentials = None
        authorization = record["headers"].get("authorization", "")
        if authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
                user, _, password = decoded.partition(":")
                credentials = (urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password))
            except (ValueError, UnicodeDecodeError):
                credentials = None
        try:
            form = urllib.parse.parse_qs(record["body"].decode("utf-8"), strict_parsing=False)
        except UnicodeDecodeError:
            form = {}
        if credentials != (self.key, self.secret) or form.get("grant_type") != ["client_credentials"]:
            return handler.answer(403, TOKEN_ERROR_BODY, headers)
        return handler.answer(200, {"token_type": "bearer", "access_token": self.token}, headers)

    def handle_search(self, handler, record):
        with self._lock:
            self._search_count += 1
            number = self._search_count
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        record["number"] = number
        try:
            self._handle_search(handler, record, number)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle_search(self, handler, record, number):
        arrived = self.clock()
        if self.latency:
            self._sleep(self.latency)
        authorization = record["headers"].get("authorization", "")
        if handler.command != "GET" or authorization != "Bearer " + self.token:
            headers, _ = self._rate_limit_headers(consume=False)
            if handler.command != "GET":
                return handler.answer(405, NOT_FOUND_BODY, headers)
            return handler.answer(401, UNAUTHORIZED_BODY, headers)
        headers, exhausted = self._rate_limit_headers(consume=True)
        fault = self._take_fault(number)
        if fault is not None:
            record["fault"] = fault
            if self._apply_fault(handler, record, fault, headers, arrived):
                return
        if exhausted:
            return handler.answer(429, TOO_MANY_BODY, headers)
        status, body = self.search(record["query_list"], arrived)
        truncate = fault == "truncate" or (isinstance(fault, tuple) and fault[0] == "truncate")
        handler.answer(status, body, headers, truncate=truncate)

    def _apply_fault(self, handler, record, fault, headers, arrived):
        """Answer with the scripted fault. Return False when a normal answer should follow."""
        kind = fault[0] if isinstance(fault, tuple) else fault
        if kind == "status":
            code, body = fault[1], fault[2]
            extra = fault[3] if len(fault) > 3 and fault[3] else {}
            if callable(body):
                body = body(record["query"])
            merged = dict(headers)
            for name, value in extra.items():
                merged[name.lower()] = value() if callable(value) else value
            handler.answer(code, body, merged)
            return True
        if kind == "html502":
            handler.answer(502, HTML_502, headers, content_type="text/html")
            return True
        if kind == "reset":
            handler.reset_connection()
            return True
        if kind == "stall":
            seconds = fault[1] if isinstance(fault, tuple) and len(fault) > 1 else 3.0
            self._sleep(seconds)
            return False
        if kind == "truncate":
            return False
        if kind == "redirect":
            location = fault[1].rstrip("/") + handler.path
            handler.answer(302, "", dict(headers, location=location), content_type="text/html")
            return True
        raise ValueError("unknown fault: %r" % (fault,))

    # -- the search itself -----------------------------------------------------------------------

    def search(self, query_list, arrived):
        """Return (status, body) for a recent search with these parameters at fake time `arrived`."""
        params = {}
        problems = []
        for name, value in query_list:
            if name not in SEARCH_PARAMETERS:
                problems.append(({name: [value]}, "The query parameter [%s] is not one of [%s]"
                                 % (name, ",".join(SEARCH_PARAMETERS))))
            elif name in params:
                problems.append(({name: [params[name], value]},
                                 "Duplicate parameters are not allowed:  the `%s` query parameter" % name))
            else:
                params[name] = value
        query = params.get("query")
        if query is None:
            problems.append(({"query": []}, "The `query` query parameter can not be empty"))
        elif not 1 <= len(query) <= 512:
            problems.append(({"query": [query]}, "The `query` query parameter value [%s] is not between "
                             "1 and 512 characters long" % query))
        max_results = params.get("max_results", "10")
        if not re.match(r"^[0-9]{1,4}$", max_results) or not 10 <= int(max_results) <= 100:
            problems.append(({"max_results": [max_results]}, "The `max_results` query parameter value "
                             "[%s] is not between 10 and 100" % max_results))
        for name, allowed in (("tweet.fields", TWEET_FIELDS), ("expansions", EXPANSIONS)):
            for item in params.get(name, "").split(",") if name in params else []:
                if item not in allowed:
                    problems.append(({name: [params[name]]}, "The `%s` query parameter value [%s] is not "
                                     "one of [%s]" % (name, item, ",".join(allowed))))
        if params.get("sort_order", "recency") not in ("recency", "relevancy"):
            problems.append(({"sort_order": [params["sort_order"]]},
                             "The `sort_order` query parameter value [%s] is not one of [recency,relevancy]"
                             % params["sort_order"]))
        start, end = self._check_times(params, arrived, problems)
        token = params.get("next_token", params.get("pagination_token"))
        state = None
        if token is not None:
            with self._lock:
                state = self._next_tokens.get(token)
            if state is None:
                problems.append(({"next_token": [token]}, "Invalid 'next_token':'%s'." % token))
        if problems:
            return 400, _invalid_request(problems)
        return 200, self._page(query, params, start, end, int(max_results), state)

    @staticmethod
    def _check_times(params, arrived, problems):
        oldest = arrived - SEVEN_DAYS
        times = {}
        for name in ("start_time", "end_time"):
            if name not in params:
                continue
            value = params[name]
            seconds = parse_strict_time(value)
            if seconds is None:
                problems.append(({name: [value]}, "Invalid '%s':'%s'. '%s' must be a valid RFC 3339 "
                                 "date-time in the form YYYY-MM-DDTHH:mm:ssZ" % (name, value, name)))
                continue
            times[name] = seconds
            if seconds < oldest:
                # The message names the bound to the minute, rounded down, while the check is exact.
                bound = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(oldest))
                problems.append(({name: [value]}, "Invalid '%s':'%s'. '%s' must be on or after %s"
                                 % (name, value, name, bound)))
            elif name == "end_time" and seconds > arrived - 10:
                problems.append(({name: [value]}, "Invalid 'end_time':'%s'. 'end_time' must be a "
                                 "minimum of 10 seconds prior to the request time." % value))
        start = times.get("start_time", int(arrived) - SEVEN_DAYS + 1)
        end = times.get("end_time", int(arrived) - 30)
        if "start_time" in times and "end_time" in times and start >= end:
            problems.append(({"start_time": [params["start_time"]], "end_time": [params["end_time"]]},
                             "Invalid 'start_time':'%s'. 'start_time' must be before 'end_time':'%s'"
                             % (params["start_time"], params["end_time"])))
        return start, end

    def _page(self, query, params, start, end, max_results, state):
        contexts = re.findall(r"(?:^|\s)context:(\d+\.\d+)(?=\s|$)", query)
        tokens = query.split()
        skip_retweets = "-is:retweet" in tokens
        only_retweets = "is:retweet" in tokens
        since_id = int(params["since_id"]) if params.get("since_id", "").isdigit() else None
        until_id = int(params["until_id"]) if params.get("until_id", "").isdigit() else None

        def matches(post):
            if any(post.context != context for context in contexts):
                return False
            if (skip_retweets and post.is_retweet) or (only_retweets and not post.is_retweet):
                return False
            if since_id is not None and post.number <= since_id:
                return False
            if until_id is not None and post.number >= until_id:
                return False
            return start <= post.created < end

        page_number = 0
        rest = [post for post in self.store.posts if matches(post)]
        if state is not None:
            position, inclusive, page_number, empty_done = state
            if self.empty_pages and not empty_done and page_number % 3 == 2:
                return {"meta": {"result_count": 0,
                                 "next_token": self._next_token_for(position, inclusive, page_number, True)}}
            rest = [post for post in rest
                    if post.number < position or (inclusive and post.number == position)]
        page = rest[:max_results]
        if not page:
            return {"meta": {"result_count": 0}}
        fields = set(params.get("tweet.fields", "").split(","))
        expand_author = "author_id" in params.get("expansions", "").split(",")
        body = {"data": [post.as_json(fields, expand_author) for post in page]}
        if expand_author:
            users, errors = [], []
            for author_id in _unique(post.author_id for post in page):
                user = self.store.users_by_id[author_id]
                if user["missing"] and self.missing_authors:
                    errors.append({
                        "value": author_id,
                        "detail": "Could not find user with id: [%s]." % author_id,
                        "title": "Not Found Error",
                        "resource_type": "user",
                        "parameter": "author_id",
                        "resource_id": author_id,
                        "type": PROBLEMS + "resource-not-found",
                    })
                else:
                    users.append({"id": user["id"], "name": user["name"], "username": user["username"]})
            if users:
                body["includes"] = {"users": users}
            if errors:
                body["errors"] = errors
        meta = {"newest_id": page[0].id, "oldest_id": page[-1].id, "result_count": len(page)}
        if len(rest) > len(page):
            meta["next_token"] = self._next_token_for(page[-1].number, self.repeat_last, page_number + 1,
                                                      False)
        body["meta"] = meta
        return body


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _invalid_request(problems):
    return {
        "errors": [{"parameters": parameters, "message": message} for parameters, message in problems],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": PROBLEMS + "invalid-request",
    }


def invalid_start_body(start_time, bound):
    """Return the 400 body the API sends when start_time is older than `bound` (Unix seconds)."""
    message = "Invalid 'start_time':'%s'. 'start_time' must be on or after %s" % (
        start_time, time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(bound)))
    return _invalid_request([({"start_time": [start_time]}, message)])


def _make_handler(fake):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tsa_b"
        sys_version = ""

        def log_message(self, format, *args):
            pass

        def date_time_string(self, timestamp=None):
            return email.utils.formatdate(fake.clock() if timestamp is None else timestamp, usegmt=True)

        def do_GET(self):
            self.dispatch()

        def do_POST(self):
            self.dispatch()

        def dispatch(self):
            split = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query_list = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
            record = {
                "method": self.command,
                "path": split.path,
                "raw_query": split.query,
                "query_list": query_list,
                "query": dict(query_list),
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body,
                "time": time.time(),
                "number": None,
                "status": None,
                "response": None,
                "gzipped": False,
            }
            with fake._lock:
                fake.requests.append(record)
            self.record = record
            try:
                if split.path == TOKEN_PATH:
                    fake.handle_token(self, record)
                elif split.path == SEARCH_PATH:
                    fake.handle_search(self, record)
                else:
                    headers, _ = fake._rate_limit_headers(consume=False)
                    self.answer(404, NOT_FOUND_BODY, headers)
            except (BrokenPipeError, ConnectionResetError, _Stop):
                self.close_connection = True

        def answer(self, status, body, headers, content_type=None, truncate=False):
            record = self.record
            record["status"] = status
            if isinstance(body, (dict, list)):
                record["response"] = body
                data = json.dumps(body, ensure_ascii=False).encode("utf-8")
                if content_type is None:
                    is_problem = isinstance(body, dict) and "title" in body and status >= 400
                    content_type = ("application/problem+json" if is_problem else "application/json")
                    content_type += "; charset=utf-8"
            else:
                data = body.encode("utf-8")
                if content_type is None:
                    content_type = "text/plain; charset=utf-8"
            encodings = [part.split(";")[0].strip().lower()
                         for part in record["headers"].get("accept-encoding", "").split(",")]
            if "gzip" in encodings and data and not truncate:
                data = gzip.compress(data)
                record["gzipped"] = True
                headers = dict(headers, **{"content-encoding": "gzip"})
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            if truncate:
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def reset_connection(self):
            # A zero linger time makes close() send a TCP reset instead of a normal end of stream.
            self.record["status"] = "reset"
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            raise _Stop()

    return Handler


# ---------------------------------------------------------------------------------------------------
# Running the tool
# ---------------------------------------------------------------------------------------------------

# Variables removed from every run of the tool, so the tester's own settings cannot leak in.
_SCRUBBED = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
             "no_proxy", "NO_PROXY", "NETRC", "NO_COLOR", "FORCE_COLOR", "COLUMNS",
             "SLICEOFML_API_URL", "SLICEOFML_BEARER_TOKEN", "SLICEOFML_RETRY_DELAY")

KEEP_STDIN_OPEN = object()   # run_cli stdin_text value: an open pipe that never delivers data


def _tool_environment(env_overrides, home):
    env = dict(os.environ)
    for name in _SCRUBBED:
        env.pop(name, None)
    env["HOME"] = home
    env["USERPROFILE"] = home
    for name, value in (env_overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_cli(args, env_overrides=None, stdin_text=None, home=None, timeout=60, cwd=None):
    """Run sliceofml.py in a subprocess and return (returncode, stdout, stderr) as text.

    HOME is a fresh temporary directory unless given. NETRC, proxy variables, NO_COLOR,
    FORCE_COLOR, COLUMNS and SLICEOFML_* are removed unless env_overrides sets them (None removes).
    stdin_text None gives an empty stdin; KEEP_STDIN_OPEN gives a pipe that stays open, so a tool
    that reads it blocks until the timeout and the run fails with returncode None.
    """
    own_home = home is None
    if own_home:
        home = tempfile.mkdtemp(prefix="sliceofml-home-")
    try:
        env = _tool_environment(env_overrides, home)
        command = [sys.executable, SLICEOFML_PATH] + list(args)
        if stdin_text is KEEP_STDIN_OPEN:
            process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, cwd=cwd)
            try:
                stdout, stderr = _communicate_keeping_stdin(process, timeout)
            finally:
                process.stdin.close()
            code = process.returncode
        else:
            data = (stdin_text or "").encode("utf-8")
            try:
                completed = subprocess.run(command, env=env, input=data, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, timeout=timeout, cwd=cwd)
            except subprocess.TimeoutExpired as error:
                return None, (error.stdout or b"").decode("utf-8", "replace"), \
                    (error.stderr or b"").decode("utf-8", "replace") + "\n[run_cli: timed out]"
            code, stdout, stderr = completed.returncode, completed.stdout, completed.stderr
        return code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    finally:
        if own_home:
            shutil.rmtree(home, ignore_errors=True)


def _communicate_keeping_stdin(process, timeout):
    chunks = {"out": [], "err": []}

    def drain(stream, key):
        for block in iter(lambda: stream.read(4096), b""):
            chunks[key].append(block)

    readers = [threading.Thread(target=drain, args=(process.stdout, "out"), daemon=True),
               threading.Thread(target=drain, args=(process.stderr, "err"), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        chunks["err"].append(b"\n[run_cli: timed out, the tool was still reading stdin?]")
        process.returncode = None
    for reader in readers:
        reader.join(5)
    process.stdout.close()
    process.stderr.close()
    return b"".join(chunks["out"]), b"".join(chunks["err"])


def run_main(args, env=None, stdin_text=None):
    """Run sliceofml.main(args) in this process and return (exit code, stdout, stderr).

    os.environ is patched for the call: the same variables as in run_cli are removed, then env is
    applied (None removes). Standard streams are io.StringIO objects.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    stdin = io.StringIO(stdin_text or "")
    with mock.patch.dict(os.environ):
        for name in _SCRUBBED:
            os.environ.pop(name, None)
        for name, value in (env or {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        with mock.patch.object(sys, "stdin", stdin), mock.patch.object(sys, "stdout", stdout), \
                mock.patch.object(sys, "stderr", stderr):
            try:
                code = sliceofml.main(list(args))
            except SystemExit as error:
                code = error.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        code = 1
    return code, stdout.getvalue(), stderr.getvalue()


def tool_version():
    """Return __version__ as written in sliceofml.py, without importing it."""
    with open(SLICEOFML_PATH, encoding="utf-8") as source:
        match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', source.read(), re.M)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------

JSON_KEYS = {"window", "start_time", "end_time", "pages", "posts_read", "posts", "complete", "stop_reason"}
POST_KEYS = {"rank", "id", "username", "text", "like_count", "retweet_count", "created_at", "url"}
QUERY = "context:%s -is:retweet" % ML_CONTEXT
_skip_without_tool = unittest.skipUnless(TOOL_PRESENT, "sliceofml.py not found")


class _FakeCase(unittest.TestCase):
    """Base: one fake per class, a fresh HOME per test, helpers to run the tool against the fake."""

    fake_options = {}

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeXAPI(**cls.fake_options).start()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.reset()
        self.home = tempfile.mkdtemp(prefix="sliceofml-test-")
        self.addCleanup(shutil.rmtree, self.home, True)
        self.netrc_path = os.path.join(self.home, ".netrc")

    def env(self, **extra):
        values = {"SLICEOFML_API_URL": self.fake.url, "SLICEOFML_RETRY_DELAY": "0.01"}
        values.update(extra)
        return values

    def write_netrc(self, text, mode=0o600):
        with open(self.netrc_path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(self.netrc_path, mode)

    def read_netrc(self):
        with open(self.netrc_path, encoding="utf-8", newline="") as handle:
            return handle.read()

    def log_in(self):
        self.write_netrc("machine sliceofml@127.0.0.1 login sliceofml-test password %s\n" % self.fake.token)

    def run_tool(self, *args, **kwargs):
        env = kwargs.pop("env", None)
        return run_cli(list(args), self.env(**(env or {})), home=self.home, **kwargs)

    def run_json(self, *args, **kwargs):
        """Run `slice --json ...`; return (code, document or None, stderr)."""
        code, stdout, stderr = self.run_tool("slice", "--json", *args, **kwargs)
        document = None
        if stdout.strip():
            try:
                document = json.loads(stdout)
            except ValueError:
                self.fail("stdout is not one JSON document: %r\nstderr: %s" % (stdout[:500], stderr))
        return code, document, stderr

    def assert_ranking(self, document, n=10):
        ids = [post["id"] for post in document["posts"]]
        expected = self.fake.expected_top(document["start_time"], document["end_time"], n)
        self.assertEqual(ids, expected)
        self.assertEqual([post["rank"] for post in document["posts"]], list(range(1, len(expected) + 1)))

    def ok_pages(self):
        return sum(1 for request in self.fake.search_requests() if request["status"] == 200)


@_skip_without_tool
class LoginTests(_FakeCase):
    fake_options = {"key": "demo-key", "secret": "demo-secret"}

    def expected_line(self, app, token=None):
        return "machine sliceofml@127.0.0.1 login %s password %s" % (app, token or self.fake.token)

    def test_login_stdin_stores_token(self):
        code, _, stderr = self.run_tool("login", stdin_text="demo-key\ndemo-secret\nsliceofml-test\n")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.read_netrc(), self.expected_line("sliceofml-test") + "\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.netrc_path).st_mode), 0o600)
        self.assertIn('Logged in to 127.0.0.1 as app "sliceofml-test"', stderr)
        self.assertIn(self.netrc_path, stderr)
        self.assertNotIn(self.fake.token, stderr)

    def test_login_token_request(self):
        code, _, stderr = self.run_tool("login", stdin_text="demo-key\ndemo-secret\nsliceofml-test\n")
        self.assertEqual(code, 0, stderr)
        requests = self.fake.token_requests()
        self.assertEqual(len(requests), 1)
        request = requests[0]
        self.assertEqual(request["method"], "POST")
        self.assertEqual(request["headers"]["authorization"],
                         "Basic " + base64.b64encode(b"demo-key:demo-secret").decode("ascii"))
        self.assertEqual(request["body"], b"grant_type=client_credentials")
        self.assertTrue(request["headers"]["content-type"].startswith("application/x-www-form-urlencoded"))
        self.assertEqual(self.fake.search_requests(), [])

    def test_login_form_encodes_key(self):
        key, secret = "k/e+y=1:x", "s%e/c+r=t"
        with FakeXAPI(key=key, secret=secret) as fake:
            code, _, stderr = run_cli(["login"], {"SLICEOFML_API_URL": fake.url},
                                      stdin_text="%s\n%s\nsliceofml-test\n" % (key, secret), home=self.home)
            self.assertEqual(code, 0, stderr)
            encoded = urllib.parse.quote_plus(key) + ":" + urllib.parse.quote_plus(secret)
            header = fake.token_requests()[0]["headers"]["authorization"]
            self.assertEqual(header, "Basic " + base64.b64encode(encoded.encode("ascii")).decode("ascii"))
            self.assertEqual(self.read_netrc(), self.expected_line("sliceofml-test", fake.token) + "\n")

    def test_login_default_app_name(self):
        code, _, stderr = self.run_tool("login", stdin_text="demo-key\ndemo-secret\n\n")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.read_netrc(), self.expected_line("sliceofml") + "\n")

    def test_login_already_logged_in(self):
        before = "machine other.example login me password secret\n" + self.expected_line("old-app", "tok-1") + "\n"
        self.write_netrc(before)
        code, _, stderr = self.run_tool("login", stdin_text=KEEP_STDIN_OPEN, timeout=15)
        self.assertEqual(code, 0, stderr)
        self.assertIn("Already logged in", stderr)
        self.assertIn('"old-app"', stderr)
        self.assertIn(self.netrc_path, stderr)
        self.assertIn("login --relogin", stderr)
        self.assertEqual(self.read_netrc(), before)
        self.assertEqual(self.fake.requests, [])

    def test_relogin_replaces_token(self):
        other = "machine other.example login me password secret\n"
        self.write_netrc(other + self.expected_line("old-app", "tok-1") + "\n")
        code, _, stderr = self.run_tool("login", "--relogin", stdin_text="demo-key\ndemo-secret\nnew-app\n")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.read_netrc(), other + self.expected_line("new-app") + "\n")
        self.assertEqual(len(self.fake.token_requests()), 1)

    def test_with_token_stores_token(self):
        self.write_netrc(self.expected_line("old-app", "tok-1") + "\n")
        code, _, stderr = self.run_tool("login", "--with-token", stdin_text="made-up-token%2Fabc%3D\n")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.read_netrc(), self.expected_line("sliceofml", "made-up-token%2Fabc%3D") + "\n")
        self.assertEqual(self.fake.requests, [])

    def test_with_token_drops_bearer_prefix(self):
        for line in ("Bearer made-up-token-3", "bearer\tmade-up-token-3", "\ufeffBearer  made-up-token-3 "):
            with self.subTest(line=line):
                code, _, stderr = self.run_tool("login", "--with-token", stdin_text=line + "\n")
                self.assertEqual(code, 0, stderr)
                self.assertEqual(self.read_netrc(), self.expected_line("sliceofml", "made-up-token-3") + "\n")
                self.assertEqual(stderr, 'Logged in to 127.0.0.1 as app "sliceofml". Saved the bearer token in '
                                         "%s (without the leading 'Bearer').\n" % self.netrc_path)

    def test_with_token_bearer_word_alone(self):
        for line in ("Bearer", "Bearer  "):
            with self.subTest(line=line):
                code, _, stderr = self.run_tool("login", "--with-token", stdin_text=line + "\n")
                self.assertEqual(code, 2)
                self.assertEqual(stderr, "sliceofml: error: the token is only the word 'Bearer'; give the token "
                                         "that follows it\n")
                self.assertFalse(os.path.exists(self.netrc_path))

    def test_with_token_byte_order_mark(self):
        code, _, stderr = self.run_tool("login", "--with-token", stdin_text="\ufeffmade-up-token-5\n")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.read_netrc(), self.expected_line("sliceofml", "made-up-token-5") + "\n")

    def test_endless_line_rejected(self):
        code, _, stderr = self.run_tool("login", "--with-token", stdin_text="\0" * 200000)
        self.assertEqual(code, 2)
        self.assertEqual(stderr, "sliceofml: error: standard input has a line longer than 65600 characters, "
                                 "more than any value sliceofml stores\n")
        self.assertFalse(os.path.exists(self.netrc_path))

    def test_empty_app_name_rejected(self):
        code, _, stderr = self.run_tool("login", "--with-token", "--app-name=", stdin_text="made-up-token-6\n")
        self.assertEqual((code, stderr), (2, "sliceofml: error: the app name is empty\n"))
        self.assertFalse(os.path.exists(self.netrc_path))

    def test_with_token_too_long(self):
        self.write_netrc(self.expected_line("old-app", "tok-1") + "\n")
        code, _, stderr = self.run_tool("login", "--with-token", stdin_text="t" * 65537 + "\n")
        self.assertEqual(code, 2)
        self.assertEqual(stderr, "sliceofml: error: the token is 65537 characters long; at most 65536 fit in a "
                                 "netrc file\n")
        self.assertEqual(self.read_netrc(), self.expected_line("old-app", "tok-1") + "\n")

    def test_with_token_app_name(self):
        code, _, stderr = self.run_tool("login", "--with-token", "--app-name", "my-app",
                                        stdin_text="made-up-token-2\n")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.read_netrc(), self.expected_line("my-app", "made-up-token-2") + "\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.netrc_path).st_mode), 0o600)

    def login_against_token_endpoint(self, status, body, content_type=None):
        """Run `login` against a server whose token endpoint sends `body` as JSON; return (code, stderr)."""
        def respond(handler):
            data = json.dumps(body).encode("utf-8")
            handler.send_response(status)
            if content_type:
                handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

        api = RawAPI(respond)
        api.server.RequestHandlerClass.do_POST = lambda handler: (
            handler.rfile.read(int(handler.headers.get("Content-Length") or 0)), respond(handler))
        with api:
            code, stdout, stderr = run_cli(["login"], {"SLICEOFML_API_URL": api.url},
                                           stdin_text="key\nsecret\napp\n", home=self.home)
        return code, stderr

    def test_token_endpoint_401(self):
        body = {"errors": [{"code": 99, "message": "Unable to verify your credentials"}]}
        code, stderr = self.login_against_token_endpoint(401, body)
        self.assertEqual(code, 4, stderr)
        self.assertIn("X rejected the API key and secret (HTTP 401: Unable to verify your credentials "
                      "(code 99))", stderr)
        self.assertFalse(os.path.exists(self.netrc_path))

    def test_unstorable_access_token(self):
        body = {"token_type": "bearer", "access_token": "#made-up-token"}
        code, stderr = self.login_against_token_endpoint(200, body, content_type="application/json")
        self.assertEqual(code, 1, stderr)
        self.assertEqual(stderr, "sliceofml: error: the token endpoint returned an access_token that sliceofml "
                                 "cannot store: it starts with '#', which netrc readers take as a comment\n")
        self.assertFalse(os.path.exists(self.netrc_path))

    def test_rejected_credentials(self):
        code, stdout, stderr = self.run_tool("login", stdin_text="demo-key\nwrong-secret\nsliceofml-test\n")
        self.assertEqual(code, 4, stderr)
        self.assertIn("OAuth 2.0 Client ID", stderr)
        self.assertFalse(os.path.exists(self.netrc_path))
        self.assertEqual(len(self.fake.token_requests()), 1)
        self.assertEqual(stdout, "")

    def test_rejected_credentials_file_untouched(self):
        before = "machine other.example login me password secret\n"
        self.write_netrc(before)
        code, _, stderr = self.run_tool("login", stdin_text="bad-key\nbad-secret\nx\n")
        self.assertEqual(code, 4, stderr)
        self.assertEqual(self.read_netrc(), before)

    def test_login_one_line_is_usage_error(self):
        code, _, stderr = self.run_tool("login", stdin_text="demo-key\n")
        self.assertEqual(code, 2, stderr)
        self.assertFalse(os.path.exists(self.netrc_path))
        self.assertEqual(self.fake.requests, [])

    def test_app_name_with_space(self):
        code, _, stderr = self.run_tool("login", stdin_text="demo-key\ndemo-secret\nmy app\n")
        self.assertEqual(code, 2, stderr)
        self.assertIn("app name", stderr)
        self.assertFalse(os.path.exists(self.netrc_path))

    def test_logged_in_token_used(self):
        code, _, stderr = self.run_tool("login", stdin_text="demo-key\ndemo-secret\nsliceofml-test\n")
        self.assertEqual(code, 0, stderr)
        code, document, stderr = self.run_json("--daily", "--max-pages", "1", "--workers", "1")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.fake.search_requests()[0]["headers"]["authorization"],
                         "Bearer " + self.fake.token)


@_skip_without_tool
class SliceTests(_FakeCase):
    fake_options = {"posts": 1200}

    def setUp(self):
        _FakeCase.setUp(self)
        self.log_in()

    def assert_request_parameters(self, request):
        query = request["query"]
        self.assertEqual(query["query"], QUERY)
        self.assertEqual(query["tweet.fields"], "public_metrics,created_at,note_tweet")
        self.assertEqual(query["expansions"], "author_id")
        self.assertEqual(query["max_results"], "100")
        self.assertRegex(query["start_time"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
        self.assertRegex(query["end_time"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
        self.assertEqual(request["headers"]["authorization"], "Bearer " + self.fake.token)

    def windows_requested(self):
        return sorted({(request["query"]["start_time"], request["query"]["end_time"])
                       for request in self.fake.search_requests()})

    def assert_window(self, document, length):
        started = time.time()
        self.assertEqual(parse_time(document["end_time"]) - parse_time(document["start_time"]), length)
        self.assertLess(abs(parse_time(document["end_time"]) - (started - 30)), 60)

    def test_daily_one_worker(self):
        code, document, stderr = self.run_json("--daily", "--workers", "1")
        self.assertEqual(code, 0, stderr)
        # More keys are allowed, but these must be there.
        self.assertLessEqual(JSON_KEYS, set(document))
        self.assertEqual(document["window"], "daily")
        self.assert_window(document, 24 * 3600)
        self.assert_ranking(document)
        self.assertEqual(self.windows_requested(), [(document["start_time"], document["end_time"])])
        self.assertEqual(self.fake.max_in_flight, 1)
        self.assertIs(document["complete"], True)
        self.assertIsNone(document["stop_reason"])
        for request in self.fake.search_requests():
            self.assert_request_parameters(request)

    def test_weekly_one_worker(self):
        code, document, stderr = self.run_json("--weekly", "--workers", "1")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(document["window"], "weekly")
        self.assert_window(document, 7 * 24 * 3600 - 150)
        self.assert_ranking(document)
        self.assertEqual(self.windows_requested(), [(document["start_time"], document["end_time"])])
        self.assertEqual(document["pages"], self.ok_pages())

    def assert_adjacent_windows(self, document, parts):
        windows = self.windows_requested()
        self.assertEqual(len(windows), parts)
        self.assertEqual(windows[0][0], document["start_time"])
        self.assertEqual(windows[-1][1], document["end_time"])
        for earlier, later in zip(windows, windows[1:]):
            self.assertEqual(earlier[1], later[0])

    def test_daily_default_workers(self):
        code, document, stderr = self.run_json("--daily")
        self.assertEqual(code, 0, stderr)
        self.assert_ranking(document)
        self.assert_adjacent_windows(document, 4)
        for request in self.fake.search_requests():
            self.assert_request_parameters(request)

    def test_weekly_default_workers(self):
        code, document, stderr = self.run_json("--weekly")
        self.assertEqual(code, 0, stderr)
        self.assert_ranking(document)
        self.assert_adjacent_windows(document, 7)
        self.assertEqual(document["pages"], self.ok_pages())

    def test_top_three(self):
        code, document, stderr = self.run_json("--weekly", "--top", "3")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(len(document["posts"]), 3)
        self.assert_ranking(document, 3)

    def test_max_pages_one(self):
        code, document, stderr = self.run_json("--weekly", "--max-pages", "1")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(document["pages"], 1)
        self.assertEqual(len(self.fake.search_requests()), 1)
        self.assertEqual(document["posts_read"], self.fake.search_requests()[0]["response"]["meta"]["result_count"])

    def full_daily(self):
        # --top is at most 100, and the daily window contains a little over 100 posts, so the search
        # spans two pages (the second repeats the last post of the first) and nearly all are shown.
        code, document, stderr = self.run_json("--daily", "--workers", "1", "--top", "100")
        self.assertEqual(code, 0, stderr)
        self.assertGreater(len(self.fake.search_requests()), 1)
        return document

    def test_each_post_counted_once(self):
        document = self.full_daily()
        ids = [post["id"] for post in document["posts"]]
        expected = self.fake.matching_posts(document["start_time"], document["end_time"])
        self.assertEqual(len(ids), 100)
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(document["posts_read"], len(expected))
        self.assert_ranking(document, 100)

    def test_post_fields_exact(self):
        document = self.full_daily()
        for post in document["posts"]:
            source = self.fake.post(post["id"])
            self.assertEqual(set(post), POST_KEYS)
            self.assertEqual(post["text"], source.raw_text, post["id"])
            self.assertEqual(post["like_count"], source.likes)
            self.assertEqual(post["retweet_count"], source.retweets)
            self.assertEqual(parse_time(post["created_at"]), source.created)
            username = self.fake.username(post["id"])
            self.assertEqual(post["username"], username)
            if username is None:
                self.assertEqual(post["url"], "https://x.com/i/status/%s" % post["id"])
            else:
                self.assertEqual(post["url"], "https://x.com/%s/status/%s" % (username, post["id"]))

    def test_text_decoded_once(self):
        document = self.full_daily()
        posts = {post["id"]: post for post in document["posts"]}
        text = posts[self.fake.featured["amp_literal"]]["text"]
        self.assertEqual(text, 'To write the entity in a post you type "&amp;" literally; R&D says x < y > z')

    def test_note_tweet_text_used(self):
        document = self.full_daily()
        posts = {post["id"]: post for post in document["posts"]}
        text = posts[self.fake.featured["note_tweet"]]["text"]
        self.assertEqual(text, self.fake.expected_text(self.fake.featured["note_tweet"]))
        self.assertTrue(text.endswith("End of the long post."))

    def test_emoji_and_scripts_kept(self):
        document = self.full_daily()
        posts = {post["id"]: post for post in document["posts"]}
        self.assertEqual(posts[self.fake.featured["emoji"]]["text"],
                         "Lab day 👩\u200d🔬 fine-tuning ❤\ufe0f thread 🧵\nStep 1:\tclean the data")
        self.assertEqual(posts[self.fake.featured["scripts"]]["text"], "机器学习 入门 · تعلم الآلة · למידת מכונה")

    def test_missing_author_username_null(self):
        code, document, stderr = self.run_json("--daily")
        self.assertEqual(code, 0, stderr)
        posts = {post["id"]: post for post in document["posts"]}
        post_id = self.fake.featured["missing_author"]
        self.assertIn(post_id, posts)
        self.assertIsNone(posts[post_id]["username"])
        self.assertEqual(posts[post_id]["url"], "https://x.com/i/status/" + post_id)
        unknown = sum(1 for post in document["posts"] if post["username"] is None)
        self.assertEqual(stderr, "sliceofml: warning: the API did not return the author of %d shown %s, "
                                 "shown as (unknown)\n" % (unknown, "post" if unknown == 1 else "posts"))
        self.assertGreater(document["partial_errors"], 0)

    def test_partial_errors_quiet_when_not_shown(self):
        code, document, stderr = self.run_json("--daily", "--top", "1")
        self.assertEqual(code, 0, stderr)
        self.assertIsNotNone(document["posts"][0]["username"])
        self.assertGreater(document["partial_errors"], 0)
        self.assertEqual(stderr, "")

    def test_table_mode(self):
        before = time.time()
        code, stdout, stderr = self.run_tool("slice", "--daily", env={"COLUMNS": "200"})
        after = time.time()
        self.assertEqual(code, 0, stderr)
        # The window depends on the second the tool started, so check the authors that are in the
        # top ten for both the earliest and the latest possible window.
        first = self.fake.expected_top(int(before) - 30 - 86400, int(before) - 30)
        last = self.fake.expected_top(int(after) - 30 - 86400, int(after) - 30)
        for post_id in set(first) & set(last):
            username = self.fake.username(post_id)
            if username is not None:
                self.assertIn(username, stdout)
        self.assertGreater(len(stdout.splitlines()), 10)

    def test_not_logged_in(self):
        os.remove(self.netrc_path)
        code, stdout, stderr = self.run_tool("slice", "--daily")
        self.assertEqual(code, 4, stderr)
        self.assertIn("sliceofml.py login", stderr)
        self.assertEqual(stdout, "")
        self.assertEqual(self.fake.requests, [])

    def test_bearer_token_variable(self):
        os.remove(self.netrc_path)
        code, document, stderr = self.run_json("--daily", env={"SLICEOFML_BEARER_TOKEN": self.fake.token})
        self.assertEqual(code, 0, stderr)
        self.assert_ranking(document)
        self.assertFalse(os.path.exists(self.netrc_path))

    def test_non_loopback_http_rejected(self):
        code, stdout, stderr = run_cli(["slice", "--daily"],
                                       {"SLICEOFML_API_URL": "http://example.invalid",
                                        "SLICEOFML_BEARER_TOKEN": "made-up-token"}, home=self.home)
        self.assertEqual(code, 2, stderr)
        self.assertIn("http://example.invalid", stderr)
        self.assertEqual(stdout, "")

    def test_gzip_used(self):
        code, document, stderr = self.run_json("--daily", "--workers", "1")
        self.assertEqual(code, 0, stderr)
        for request in self.fake.search_requests():
            self.assertIn("gzip", request["headers"].get("accept-encoding", ""))
            self.assertTrue(request["gzipped"])
        self.assert_ranking(document)

    def test_user_agent(self):
        code, _, stderr = self.run_json("--daily", "--max-pages", "1")
        self.assertEqual(code, 0, stderr)
        expected = "sliceofml/%s Python/%s" % (tool_version(), platform.python_version())
        self.assertEqual(self.fake.search_requests()[0]["headers"]["user-agent"], expected)

    def test_empty_page_followed(self):
        code, document, stderr = self.run_json("--weekly", "--workers", "1")
        self.assertEqual(code, 0, stderr)
        requests = self.fake.search_requests()
        empty = [index for index, request in enumerate(requests)
                 if request["status"] == 200 and "data" not in request["response"]
                 and "next_token" in request["response"]["meta"]]
        self.assertTrue(empty)
        for index in empty:
            token = requests[index]["response"]["meta"]["next_token"]
            self.assertEqual(requests[index + 1]["query"].get("next_token"), token)
        self.assert_ranking(document)


@_skip_without_tool
class ConcurrencyTests(_FakeCase):
    fake_options = {"latency": 0.05}

    def setUp(self):
        _FakeCase.setUp(self)
        self.log_in()

    def test_default_workers_overlap(self):
        code, document, stderr = self.run_json("--weekly")
        self.assertEqual(code, 0, stderr)
        self.assertGreater(self.fake.max_in_flight, 1)
        self.assertLessEqual(self.fake.max_in_flight, sliceofml.DEFAULT_WORKERS)

    def test_low_remaining_sequential(self):
        with FakeXAPI(latency=0.05, report_remaining=3) as fake:
            env = {"SLICEOFML_API_URL": fake.url, "SLICEOFML_RETRY_DELAY": "0.01",
                   "SLICEOFML_BEARER_TOKEN": fake.token}
            code, stdout, stderr = run_cli(["slice", "--weekly", "--json"], env, home=self.home)
            self.assertEqual(code, 0, stderr)
            self.assertEqual(fake.max_in_flight, 1)
            document = json.loads(stdout)
            self.assertEqual(json.loads(stdout)["posts"][0]["id"],
                             fake.expected_top(document["start_time"], document["end_time"], 1)[0])


def _reset_in(seconds):
    return lambda: str(int(time.time()) + seconds)


@_skip_without_tool
class ApiFaultTests(_FakeCase):
    """Faults scripted on the nth search request of a sequential weekly search (several pages)."""

    def setUp(self):
        _FakeCase.setUp(self)
        self.log_in()

    def run_weekly(self, *extra):
        return self.run_json("--weekly", "--workers", "1", *extra)

    def test_unauthorized_no_retry(self):
        older_form = {"errors": [{"message": "Invalid or expired token", "code": 89}]}
        for body in (UNAUTHORIZED_BODY, older_form):
            with self.subTest(body=body):
                self.fake.reset()
                self.fake.fail(1, ("status", 401, body))
                code, document, stderr = self.run_weekly()
                self.assertEqual(code, 4, stderr)
                self.assertIn("login --relogin", stderr)
                self.assertIsNone(document)
                self.assertEqual(len(self.fake.search_requests()), 1)

    def test_client_forbidden(self):
        self.fake.fail(1, ("status", 403, CLIENT_FORBIDDEN_BODY))
        code, document, stderr = self.run_weekly()
        self.assertEqual(code, 1, stderr)
        self.assertIn("Client Forbidden", stderr)
        self.assertIn("must use keys and tokens from an App that is attached to a Project", stderr)
        self.assertIn("client-not-enrolled", stderr)
        self.assertEqual(len(self.fake.search_requests()), 1)

    def test_invalid_request(self):
        body = _invalid_request([({"query": ["x"]}, "There were errors processing your request: "
                                  "Reference to invalid operator 'foo'")])
        self.fake.fail(1, ("status", 400, body))
        code, document, stderr = self.run_weekly()
        self.assertEqual(code, 1, stderr)
        self.assertIn("Invalid Request", stderr)
        self.assertIn("One or more parameters to your request was invalid.", stderr)
        self.assertEqual(len(self.fake.search_requests()), 1)

    def fail_with_usage_cap(self, nth):
        # The reset is within --max-wait, so only the usage-capped type keeps the tool from waiting.
        self.fake.fail(nth, ("status", 429, USAGE_CAPPED_BODY,
                             {"x-rate-limit-remaining": "0", "x-rate-limit-reset": _reset_in(20)}))

    def test_usage_capped_first_page(self):
        self.fail_with_usage_cap(1)
        code, stdout, stderr = self.run_tool("slice", "--weekly", "--workers", "1", "--json")
        self.assertEqual(code, 1, stderr)
        self.assertNotIn("before going on", stderr)
        self.assertEqual(stdout, "")
        self.assertIn("Usage cap exceeded", stderr)
        self.assertEqual(len(self.fake.search_requests()), 1)

    def test_usage_capped_after_pages(self):
        self.fail_with_usage_cap(3)
        code, document, stderr = self.run_weekly()
        self.assertEqual(code, 1, stderr)
        self.assertNotIn("before going on", stderr)
        self.assertIs(document["complete"], False)
        self.assertIsNotNone(document["stop_reason"])
        self.assertEqual(document["pages"], 2)
        self.assertTrue(document["posts"])
        self.assertIn("sliceofml: warning:", stderr)
        self.assertEqual(len(self.fake.search_requests()), 3)

    def assert_retried_same_token(self, nth, document):
        requests = self.fake.search_requests()
        self.assertIsNotNone(requests[nth - 1]["query"].get("next_token"))
        self.assertEqual(requests[nth]["query"].get("next_token"), requests[nth - 1]["query"].get("next_token"))
        self.assertIs(document["complete"], True)
        self.assert_ranking(document)

    def test_per_second_limit_retried(self):
        self.fake.fail(2, ("status", 429, TOO_MANY_BODY, {"x-rate-limit-remaining": "200"}))
        code, document, stderr = self.run_weekly()
        self.assertEqual(code, 0, stderr)
        self.assert_retried_same_token(2, document)

    def test_rate_limit_waited_out(self):
        self.fake.fail(2, ("status", 429, TOO_MANY_BODY,
                           {"x-rate-limit-remaining": "0", "x-rate-limit-reset": _reset_in(2)}))
        code, document, stderr = self.run_weekly()
        self.assertEqual(code, 0, stderr)
        self.assert_retried_same_token(2, document)
        requests = self.fake.search_requests()
        self.assertGreater(requests[2]["time"] - requests[1]["time"], 0.9)

    def test_rate_limit_server_clock(self):
        # The server's clock is an hour ahead: the reset is 2 s away by its Date header and about
        # an hour away by this machine's clock, so only a client that uses the Date header waits.
        with FakeXAPI(clock_offset=3600) as fake:
            fake.fail(3, ("status", 429, TOO_MANY_BODY, {"x-rate-limit-remaining": "0",
                                                         "x-rate-limit-reset": lambda: str(int(fake.clock()) + 2)}))
            env = {"SLICEOFML_API_URL": fake.url, "SLICEOFML_RETRY_DELAY": "0.01",
                   "SLICEOFML_BEARER_TOKEN": fake.token}
            code, stdout, stderr = run_cli(["slice", "--weekly", "--workers", "1", "--json"], env,
                                           home=self.home)
            self.assertEqual(code, 0, stderr)
            requests = fake.search_requests()
            self.assertEqual(requests[2]["status"], 429)
            self.assertEqual(requests[3]["query"].get("next_token"), requests[2]["query"].get("next_token"))
            self.assertIs(json.loads(stdout)["complete"], True)

    def test_repeated_rate_limit_message(self):
        # Every reset here is 1 s away, well within --max-wait, whatever makes the tool stop.
        for nth in range(2, 12):
            self.fake.fail(nth, ("status", 429, TOO_MANY_BODY,
                                 {"x-rate-limit-remaining": "0", "x-rate-limit-reset": _reset_in(1)}))
        code, document, stderr = self.run_weekly()
        self.assertNotIn("which is longer than --max-wait 90 s", stderr)

    def test_rate_limit_beyond_max_wait(self):
        self.fake.fail(3, ("status", 429, TOO_MANY_BODY,
                           {"x-rate-limit-remaining": "0", "x-rate-limit-reset": _reset_in(600)}))
        started = time.time()
        code, document, stderr = self.run_weekly("--max-wait", "5")
        self.assertEqual(code, 1, stderr)
        self.assertLess(time.time() - started, 5)
        self.assertIs(document["complete"], False)
        self.assertIsNotNone(document["stop_reason"])
        self.assertEqual(document["pages"], 2)
        self.assertTrue(document["posts"])
        self.assertIn("sliceofml: warning:", stderr)
        self.assertEqual(len(self.fake.search_requests()), 3)

    def test_transient_faults_retried(self):
        faults = [("status", 503, SERVICE_UNAVAILABLE_BODY), ("status", 500, INTERNAL_ERROR_BODY),
                  "html502", "reset", "truncate"]
        for fault in faults:
            with self.subTest(fault=fault[:2] if isinstance(fault, tuple) else fault):
                self.fake.reset()
                self.fake.fail(2, fault)
                code, document, stderr = self.run_weekly()
                self.assertEqual(code, 0, stderr)
                self.assert_retried_same_token(2, document)

    def test_stall_times_out_then_retried(self):
        self.fake.fail(2, ("stall", 4))
        code, document, stderr = self.run_weekly("--timeout", "1")
        self.assertEqual(code, 0, stderr)
        self.assert_retried_same_token(2, document)

    def test_error_does_not_wait_for_stalled_window(self):
        self.fake.fail(2, ("stall", 30))
        self.fake.fail(3, ("status", 403, CLIENT_FORBIDDEN_BODY))
        code, stdout, stderr = self.run_tool("slice", "--weekly", "--json", timeout=20)
        self.assertEqual(code, 1, stderr)
        document = json.loads(stdout)
        self.assertFalse(document["complete"])
        self.assertIn("Client Forbidden", document["stop_reason"])

    def test_retries_exhausted(self):
        for nth in (3, 4, 5, 6):
            self.fake.fail(nth, ("status", 503, SERVICE_UNAVAILABLE_BODY))
        code, document, stderr = self.run_weekly()
        self.assertEqual(code, 1, stderr)
        requests = self.fake.search_requests()
        self.assertEqual(len(requests), 6)
        tokens = {request["query"].get("next_token") for request in requests[2:]}
        self.assertEqual(len(tokens), 1)
        self.assertIsNotNone(tokens.pop())
        self.assertIs(document["complete"], False)
        self.assertEqual(document["pages"], 2)
        self.assertTrue(document["posts"])
        self.assertIn("sliceofml: warning:", stderr)

    def test_redirect_not_followed_with_token(self):
        with FakeXAPI() as other:
            self.fake.fail(1, ("redirect", other.url))
            code, document, stderr = self.run_weekly()
            self.assertEqual(code, 1, stderr)
            for request in other.requests:
                self.assertNotIn("authorization", request["headers"])

    def test_start_time_corrected_once(self):
        def too_old(query):
            bound = (int(parse_time(query["start_time"])) + 240) // 60 * 60
            return invalid_start_body(query["start_time"], bound)

        self.fake.fail(3, ("status", 400, too_old))
        code, document, stderr = self.run_weekly()
        self.assertEqual(code, 0, stderr)
        requests = self.fake.search_requests()
        bound = (int(parse_time(requests[2]["query"]["start_time"])) + 240) // 60 * 60
        self.assertEqual(requests[3]["query"]["start_time"], format_time(bound + sliceofml.START_TIME_CORRECTION))
        self.assertEqual(requests[3]["query"].get("next_token"), requests[2]["query"].get("next_token"))
        self.assertEqual(requests[3]["query"]["end_time"], requests[2]["query"]["end_time"])

    def test_start_time_second_refusal(self):
        def too_old(query):
            return invalid_start_body(query["start_time"], int(parse_time(query["start_time"])) + 600)

        self.fake.fail(1, ("status", 400, too_old))
        self.fake.fail(2, ("status", 400, too_old))
        code, document, stderr = self.run_weekly()
        self.assertEqual(code, 1, stderr)
        self.assertEqual(len(self.fake.search_requests()), 2)
        self.assertIn("Invalid Request", stderr)

    def run_clock_ahead(self):
        """Run a sequential weekly slice against a fake whose clock is ahead; return (code, stdout,
        stderr, search requests)."""
        # The fake's clock runs 150 to 210 s ahead, so the weekly start_time is too old on arrival.
        # The 7-day bound then falls 10 s past a minute, which the 400 names as that minute. The
        # corrected start_time stays valid for minutes after that.
        ahead = time.time() + 150
        with FakeXAPI(clock_offset=150 + (10 - ahead % 60) % 60) as fake:
            env = {"SLICEOFML_API_URL": fake.url, "SLICEOFML_RETRY_DELAY": "0.01",
                   "SLICEOFML_BEARER_TOKEN": fake.token}
            code, stdout, stderr = run_cli(["slice", "--weekly", "--workers", "1", "--json"], env,
                                           home=self.home)
            return code, stdout, stderr, fake.search_requests()

    def test_start_time_clock_ahead(self):
        code, stdout, stderr, requests = self.run_clock_ahead()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(requests[0]["status"], 400)
        message = requests[0]["response"]["errors"][0]["message"]
        bound = re.search(r"must be on or after (\S+)$", message).group(1)
        self.assertEqual(requests[1]["query"]["start_time"],
                         format_time(parse_time(bound) + sliceofml.START_TIME_CORRECTION))
        self.assertEqual(requests[1]["status"], 200)

    def test_local_clock_ahead_corrects_end(self):
        with FakeXAPI(clock_offset=-3600) as fake:
            env = {"SLICEOFML_API_URL": fake.url, "SLICEOFML_RETRY_DELAY": "0.01",
                   "SLICEOFML_BEARER_TOKEN": fake.token}
            code, stdout, stderr = run_cli(["slice", "--daily", "--workers", "1", "--json"], env,
                                           home=self.home)
            requests = fake.search_requests()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(requests[0]["status"], 400)
        self.assertIn("'end_time' must be a minimum of 10 seconds", requests[0]["response"]["errors"][0]["message"])
        self.assertEqual(requests[1]["status"], 200)
        corrected_end = parse_time(requests[1]["query"]["end_time"])
        self.assertLess(abs(corrected_end - (time.time() - 3600 - 30)), 10)
        self.assertEqual(requests[1]["query"]["start_time"], requests[0]["query"]["start_time"])
        document = json.loads(stdout)
        self.assertEqual(document["end_time"], requests[1]["query"]["end_time"])

    def test_end_then_start_corrected(self):
        # A clock fix for end_time must not use up the one fix for start_time.
        def too_late(query):
            message = ("Invalid 'end_time':'%s'. 'end_time' must be a minimum of 10 seconds prior to the "
                       "request time." % query["end_time"])
            return _invalid_request([({"end_time": [query["end_time"]]}, message)])

        def too_old(query):
            bound = (int(parse_time(query["start_time"])) + 240) // 60 * 60
            return invalid_start_body(query["start_time"], bound)

        self.fake.fail(1, ("status", 400, too_late))
        self.fake.fail(3, ("status", 400, too_old))
        code, document, stderr = self.run_json("--weekly", "--workers", "1")
        self.assertEqual(code, 0, stderr)
        requests = self.fake.search_requests()
        self.assertEqual([request["status"] for request in requests[:4]], [400, 200, 400, 200])
        bound = (int(parse_time(requests[2]["query"]["start_time"])) + 240) // 60 * 60
        self.assertEqual(requests[3]["query"]["start_time"], format_time(bound + sliceofml.START_TIME_CORRECTION))
        self.assertIs(document["complete"], True)

    def test_corrected_start_reported(self):
        # Posts between the first and the corrected start_time were never searched, so the JSON
        # must not claim the first one.
        code, stdout, stderr, requests = self.run_clock_ahead()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(json.loads(stdout)["start_time"], requests[1]["query"]["start_time"])


@_skip_without_tool
class StatusLogoutTests(_FakeCase):
    other = "machine other.example login me password secret\n"

    def entry(self):
        return "machine sliceofml@127.0.0.1 login sliceofml-test password %s\n" % self.fake.token

    def status_lines(self, stdout):
        return {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
                for line in stdout.splitlines() if ":" in line}

    def test_status_netrc(self):
        self.write_netrc(self.other + self.entry())
        code, stdout, stderr = self.run_tool("status")
        self.assertEqual(code, 0, stderr)
        lines = self.status_lines(stdout)
        self.assertIn(self.fake.token[-4:], lines["Bearer token"])
        self.assertIn(self.netrc_path, lines["Source"])
        self.assertEqual(lines["App name"], "sliceofml-test")
        self.assertNotIn(self.fake.token[:-4], stdout + stderr)
        self.assertNotIn("warning", stderr)

    def test_status_environment(self):
        code, stdout, stderr = self.run_tool("status", env={"SLICEOFML_BEARER_TOKEN": "made-up-token-9876"})
        self.assertEqual(code, 0, stderr)
        self.assertIn("SLICEOFML_BEARER_TOKEN", self.status_lines(stdout)["Source"])
        self.assertNotIn("made-up-token-", stdout + stderr)

    def test_status_not_logged_in(self):
        code, stdout, stderr = self.run_tool("status")
        self.assertEqual(code, 4, stderr)
        self.assertIn("Bearer token", stdout)

    @unittest.skipUnless(os.name == "posix", "POSIX file modes")
    def test_status_readable_netrc_warns(self):
        self.write_netrc(self.entry(), mode=0o644)
        code, _, stderr = self.run_tool("status")
        self.assertEqual(code, 0, stderr)
        self.assertIn("sliceofml: warning:", stderr)
        self.assertIn(self.netrc_path, stderr)

    def test_logout_removes_entry(self):
        self.write_netrc(self.other + self.entry())
        code, stdout, stderr = self.run_tool("logout")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(stderr, "Logged out: removed the entry for sliceofml@127.0.0.1 from %s.\n"
                         % self.netrc_path)
        self.assertEqual(self.read_netrc(), self.other)
        self.assertEqual(self.fake.requests, [])

    def test_logout_warns_environment_token(self):
        self.write_netrc(self.entry())
        code, stdout, stderr = self.run_tool("logout", env={"SLICEOFML_BEARER_TOKEN": "made-up-env-token"})
        self.assertEqual(code, 0, stderr)
        self.assertEqual(stderr, "Logged out: removed the entry for sliceofml@127.0.0.1 from %s.\n"
                                 "sliceofml: warning: SLICEOFML_BEARER_TOKEN is still set, so slice keeps using "
                                 "that token until you unset it\n" % self.netrc_path)

    def test_logout_without_entry(self):
        self.write_netrc(self.other)
        code, stdout, stderr = self.run_tool("logout")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(stderr, "Not logged in: %s has no entry for sliceofml@127.0.0.1.\n" % self.netrc_path)
        self.assertEqual(self.read_netrc(), self.other)


@unittest.skipUnless(sliceofml is not None and hasattr(sliceofml, "main"), "sliceofml cannot be imported")
class InProcessTests(_FakeCase):
    def setUp(self):
        _FakeCase.setUp(self)
        self.log_in()

    def main_env(self, **extra):
        values = self.env(HOME=self.home, NETRC=self.netrc_path)
        values.update(extra)
        return values

    def test_main_slice_json(self):
        code, stdout, stderr = run_main(["slice", "--daily", "--json"], self.main_env())
        self.assertEqual(code, 0, stderr)
        self.assert_ranking(json.loads(stdout))

    def test_main_not_logged_in(self):
        os.remove(self.netrc_path)
        code, stdout, stderr = run_main(["slice"], self.main_env())
        self.assertEqual(code, 4)
        self.assertIn("sliceofml.py login", stderr)
        self.assertEqual(self.fake.requests, [])

    def test_main_login_stdin(self):
        os.remove(self.netrc_path)
        code, _, stderr = run_main(["login"], self.main_env(), "demo-key\ndemo-secret\nsliceofml-test\n")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.read_netrc(),
                         "machine sliceofml@127.0.0.1 login sliceofml-test password %s\n" % self.fake.token)


class FakeXAPITests(unittest.TestCase):
    """Checks of the fake itself, so a broken fake is not mistaken for a broken tool."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeXAPI().start()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.reset()

    def search(self, **params):
        return self.fake.search(sorted(params.items()), self.fake.clock())

    def test_renew_follows_the_clock(self):
        fake = FakeXAPI()
        fake.clock_offset = 3600
        fake.renew()
        self.assertAlmostEqual(fake.now, time.time() + 3600, delta=5)
        self.assertEqual(fake.store.now, fake.now)
        self.assertEqual(len(fake.store.posts), len(self.fake.store.posts))

    def test_too_new_left_out_on_request(self):
        fake = FakeXAPI(too_new=False)
        texts = [post.raw_text for post in fake.store.posts]
        self.assertNotIn("Newer than any end_time the API accepts", texts)
        self.assertIn("Newer than any end_time the API accepts", [post.raw_text for post in self.fake.store.posts])
        fake.renew()
        self.assertNotIn("Newer than any end_time the API accepts", [post.raw_text for post in fake.store.posts])

    @unittest.skipUnless(os.name == "posix", "stops the server with SIGINT")
    def test_serve_until_interrupted(self):
        home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, home)
        server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, universal_newlines=True)
        self.addCleanup(server.kill)
        first = server.stdout.readline()
        url = first.rsplit(" ", 1)[1].strip()
        self.assertTrue(first.startswith("A fake X API with generated posts (not the real X) is listening at "
                                         "http://127.0.0.1:"), first)
        code, stdout, stderr = run_cli(["login"], {"SLICEOFML_API_URL": url}, home=home,
                                       stdin_text="demo-key\ndemo-secret\nmy-app\n")
        self.assertEqual(code, 0, stderr)
        server.send_signal(signal.SIGINT)
        self.assertEqual(server.wait(30), 0)

    def week(self):
        now = int(self.fake.clock())
        return format_time(now - SEVEN_DAYS + 120), format_time(now - 30)

    def test_posts_shape(self):
        posts = self.fake.store.posts
        self.assertEqual(len(posts), 600)
        self.assertEqual([post.number for post in posts], sorted((post.number for post in posts), reverse=True))
        self.assertEqual([post.created for post in posts], sorted((post.created for post in posts), reverse=True))
        self.assertTrue(all(len(post.id) == 19 for post in posts))
        self.assertTrue(any(post.is_retweet for post in posts))
        self.assertTrue(any(post.context == CATS_CONTEXT for post in posts))
        self.assertIn("&amp;amp;", self.fake.post(self.fake.featured["amp_literal"]).api_text)

    def test_pages_cover_window(self):
        start, end = self.week()
        token, seen, pages = None, [], 0
        while True:
            params = {"query": QUERY, "start_time": start, "end_time": end, "max_results": "100",
                      "tweet.fields": "public_metrics,created_at,note_tweet", "expansions": "author_id"}
            if token:
                params["next_token"] = token
            status, body = self.search(**params)
            self.assertEqual(status, 200, body)
            pages += 1
            seen.extend(post["id"] for post in body.get("data", []))
            token = body["meta"].get("next_token")
            if token is None:
                break
        expected = {post.id for post in self.fake.matching_posts(start, end)}
        self.assertEqual(set(seen), expected)
        self.assertGreater(len(seen), len(expected))      # repeated posts across pages
        self.assertGreater(pages, len(expected) // 100 + 1)   # includes an empty page

    def test_validation(self):
        start, end = self.week()
        cases = [
            {"query": QUERY, "max_results": "5"},
            {"query": QUERY, "max_results": "101"},
            {"query": ""},
            {"query": "x" * 513},
            {"query": QUERY, "start_time": start[:-1] + ".000Z"},
            {"query": QUERY, "start_time": format_time(self.fake.clock() - SEVEN_DAYS - 1)},
            {"query": QUERY, "end_time": format_time(self.fake.clock() - 5)},
            {"query": QUERY, "start_time": end, "end_time": start},
            {"query": QUERY, "bogus": "1"},
            {"query": QUERY, "next_token": "not-a-token"},
        ]
        for params in cases:
            with self.subTest(params=params):
                status, body = self.search(**params)
                self.assertEqual(status, 400)
                self.assertEqual(body["type"], PROBLEMS + "invalid-request")

    def test_start_time_message(self):
        now = self.fake.clock()
        status, body = self.search(query=QUERY, start_time=format_time(now - SEVEN_DAYS - 60))
        self.assertEqual(status, 400)
        bound = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(now - SEVEN_DAYS))
        self.assertTrue(body["errors"][0]["message"].endswith("'start_time' must be on or after " + bound))

    def test_expected_top_order(self):
        start, end = self.week()
        featured = self.fake.featured
        top = self.fake.expected_top(start, end, 40)
        for first, second in (("tie_a1", "tie_a2"), ("tie_a2", "tie_a3"), ("tie_b2", "tie_b1"),
                              ("tie_c1", "tie_c2"), ("tie_d2", "tie_d1")):
            self.assertLess(top.index(featured[first]), top.index(featured[second]))
        self.assertNotIn(featured["too_old"], top)
        self.assertNotIn(featured["cats_top"], top)

    def http(self, method, path, headers=None, body=None):
        import http.client
        connection = http.client.HTTPConnection("127.0.0.1", int(self.fake.url.rsplit(":", 1)[1]), timeout=5)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response, data

    def test_token_endpoint(self):
        good = "Basic " + base64.b64encode(b"demo-key:demo-secret").decode("ascii")
        form = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}
        response, data = self.http("POST", TOKEN_PATH, dict(form, Authorization=good),
                                   b"grant_type=client_credentials")
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(data), {"token_type": "bearer", "access_token": self.fake.token})
        self.assertIn("%2F", self.fake.token)
        self.assertIn("%3D", self.fake.token)
        response, data = self.http("POST", TOKEN_PATH, dict(form, Authorization=good), b"")
        self.assertEqual(response.status, 403)
        self.assertEqual(json.loads(data), TOKEN_ERROR_BODY)

    def test_search_headers(self):
        start, end = self.week()
        path = SEARCH_PATH + "?" + urllib.parse.urlencode({"query": QUERY, "start_time": start, "end_time": end})
        response, data = self.http("GET", path, {"Authorization": "Bearer " + self.fake.token,
                                                 "Accept-Encoding": "gzip"})
        self.assertEqual(response.status, 200)
        self.assertEqual(response.getheader("content-encoding"), "gzip")
        self.assertEqual(len(json.loads(gzip.decompress(data))["data"]), 10)
        self.assertEqual(response.getheader("x-rate-limit-limit"), "450")
        self.assertEqual(response.getheader("x-rate-limit-remaining"), "449")
        self.assertIsNotNone(response.getheader("date"))
        response, data = self.http("GET", path, {"Authorization": "Bearer wrong"})
        self.assertEqual(response.status, 401)
        self.assertEqual(json.loads(data), UNAUTHORIZED_BODY)

    def test_rate_limit_exhausted(self):
        with FakeXAPI(rate_limit_remaining=1) as fake:
            start, end = self.week()
            path = SEARCH_PATH + "?" + urllib.parse.urlencode({"query": QUERY})
            statuses = []
            for _ in range(2):
                import http.client
                connection = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=5)
                connection.request("GET", path, headers={"Authorization": "Bearer " + fake.token})
                response = connection.getresponse()
                statuses.append((response.status, response.getheader("x-rate-limit-remaining")))
                response.read()
                connection.close()
            self.assertEqual(statuses, [(200, "0"), (429, "0")])


# ---------------------------------------------------------------------------------------------------
# Demo
# ---------------------------------------------------------------------------------------------------


def demo(argv=None):
    """Log in to a local fake X API in a throwaway HOME and show the weekly slice. Return its exit code."""
    sys.stderr.write("sliceofml demo: a local fake X API on 127.0.0.1 with generated posts, "
                     "not the real X.\n")
    sys.stderr.flush()
    home = tempfile.mkdtemp(prefix="sliceofml-demo-")
    try:
        # Authors left out of includes are rare on the real API; the demo leaves that quirk out.
        with FakeXAPI(missing_authors=False) as fake:
            env = _tool_environment({"SLICEOFML_API_URL": fake.url}, home)
            for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
                if name in os.environ:
                    env[name] = os.environ[name]
            login = subprocess.run([sys.executable, SLICEOFML_PATH, "login"], env=env,
                                   input=b"demo-key\ndemo-secret\nsliceofml-demo\n")
            if login.returncode != 0:
                return login.returncode
            return subprocess.call([sys.executable, SLICEOFML_PATH, "slice", "--weekly"] + list(argv or []),
                                   env=env)
    finally:
        shutil.rmtree(home, ignore_errors=True)

def serve(argv=None):
    """Run the fake X API on 127.0.0.1 until Ctrl-C, for trying sliceofml by hand. Return 0."""
    with FakeXAPI(missing_authors=False, too_new=False) as fake:
        print("A fake X API with generated posts (not the real X) is listening at %s" % fake.url)
        print("In another shell:")
        print("  export SLICEOFML_API_URL=%s" % fake.url)
        print("  printf 'demo-key\\ndemo-secret\\nmy-app\\n' | python3 sliceofml.py login")
        print("  python3 sliceofml.py slice --weekly")
        print("Its posts are generated again every 10 minutes, once a minute has passed without "
              "requests. Ctrl-C stops it.")
        sys.stdout.flush()
        try:
            while True:
                time.sleep(600)
                # A slice pauses between pages, so only a quiet minute shows that none is running;
                # new posts would end its next_tokens.
                while fake.requests and time.time() - fake.requests[-1]["time"] < 60:
                    time.sleep(10)
                fake.renew()
        except KeyboardInterrupt:
            return 0


# ==============================================================================================
# The netrc file: every shape of file users have, read back by this Python's netrc module
# ==============================================================================================

_NETRC_SCRIPT = SLICEOFML_PATH

_NETRC_POSIX = os.name == "posix"

# ----------------------------------------------------------------------------------------------
# netrc files of shapes that real users have. None means there is no ~/.netrc at all.
# ----------------------------------------------------------------------------------------------
_NETRC_CASES = {
    # No ~/.netrc yet: login must create it, private from the start.
    "01-missing": None,
    # A file that exists but is empty.
    "02-empty": b"",
    # Two ordinary entries written one per line.
    "03-one-line-entries": (
        b"machine git.example.org login dev password devpass\n"
        b"machine files.example.net login ops password opspass\n"
    ),
    # Our entry first, on one line, followed by an entry spread over three indented lines.
    "04-ours-one-line-first": (
        b"machine sliceofml@api.x.com login OldApp password OLDTOKEN\n"
        b"machine git.example.org\n"
        b"  login dev\n"
        b"  password devpass\n"
        b"machine files.example.net login ops password opspass\n"
    ),
    # Our entry between two others, spread over three tab-indented lines.
    "05-ours-three-lines-middle": (
        b"machine git.example.org login dev password devpass\n"
        b"machine sliceofml@api.x.com\n"
        b"\tlogin OldApp\n"
        b"\tpassword OLDTOKEN\n"
        b"machine files.example.net login ops password opspass\n"
    ),
    # Machine names that contain ours or the API host but are different machines: a writer that
    # matches by substring or prefix would replace or delete them.
    "06-lookalike-hosts": (
        b"machine sliceofml@api.x.com.example login a password b\n"
        b"machine api.x.com login c password d\n"
        b"machine xsliceofml@api.x.com login e password f\n"
    ),
    # Whole-line comments, a comment after an entry, a lone '#' and blank lines.
    "07-comments": (
        b"# work machines\n"
        b"\n"
        b"machine git.example.org login dev password devpass # the old one\n"
        b"\n"
        b"#\n"
        b"machine files.example.net login ops password opspass\n"
    ),
    # The last line has no newline, so a plain append would glue our entry onto the password.
    "08-no-trailing-newline": b"machine git.example.org login dev password devpass",
    # Windows line endings: our entry should end in CRLF as well.
    "09-crlf": (
        b"machine git.example.org login dev password devpass\r\n"
        b"machine files.example.net login ops password opspass\r\n"
    ),
    # A `default` entry at the end, which matches every host in other netrc readers.
    "10-default-last": (
        b"machine git.example.org login dev password devpass\n"
        b"default login anonymous password guest@example.org\n"
    ),
    # An ftp macro: its body lines run up to the next empty line and are not entries.
    "11-macdef": (
        b"machine ftp.example.org login dev password devpass\n"
        b"macdef init\n"
        b"cd /pub\n"
        b"binary\n"
        b"get README\n"
        b"\n"
        b"machine files.example.net login ops password opspass\n"
    ),
    # A macro whose body runs to the end of the file without the closing empty line. Python 3.8
    # to 3.10 accept it, and an entry appended right after it would become part of the macro body.
    # Python 3.11 and newer reject the file ("Macro definition missing null line terminator").
    "12-macdef-open-at-end": (
        b"machine ftp.example.org login dev password devpass\n"
        b"macdef init\n"
        b"cd /pub\n"
    ),
    # The keywords in an unusual order, with an `account` value.
    "13-account-and-order": b"machine git.example.org password devpass account team login dev\n",
    # Passwords containing or starting with '#': values, not comments.
    "14-hash-in-password": (
        b"machine git.example.org login dev password pa#ss\n"
        b"machine files.example.net login ops password #start\n"
    ),
    # Tabs, runs of spaces and a blank line inside one entry.
    "15-tabs-odd-spacing": b"machine\tgit.example.org\t\tlogin   dev\n\n   password\tdevpass\n",
    # Our entry twice (Python's reader keeps the last one): login and logout must handle both.
    "16-duplicate-ours": (
        b"machine sliceofml@api.x.com login A password FIRST\n"
        b"machine git.example.org login dev password devpass\n"
        b"machine sliceofml@api.x.com login B password SECOND\n"
    ),
    # The entry the original 2022 sliceofml wrote, under the real API host name.
    "17-legacy-original-tool": b"machine api.twitter.com\n  login SliceOfML\n  password LEGACYTOKEN\n",
    # A `machine` keyword with no name at the end: every Python version rejects this file (line 3).
    "18-unparsable": b"machine git.example.org login dev password devpass\nmachine\n",
}

# Cases that Python's netrc module rejects, by version. The tests compute this on the running
# Python and check it against the table, so a change in the stdlib shows up as its own failure.
_NETRC_REJECTED = {"18-unparsable"}
if sys.version_info >= (3, 11):
    _NETRC_REJECTED.add("12-macdef-open-at-end")

# The token endpoint of the fake API returns this bearer token. Real X tokens contain
# percent-escapes like these and are sent exactly as issued, so the netrc entry keeps them as is.
_NETRC_SERVER_TOKEN = "AAAAtest%2Ftoken%3Dxyz"

# ----------------------------------------------------------------------------------------------
# Launcher: runs sliceofml.py as __main__ in a process where only loopback names resolve.
# argv: UMASK|-  HTTPS_REDIRECT_PORT|-  SCRIPT  ARGS...
# With a redirect port, every https:// connection goes over plain HTTP to 127.0.0.1:PORT, so a
# run against the default https://api.x.com reaches the fake API instead.
# ----------------------------------------------------------------------------------------------
_NETRC_LAUNCHER = r"""
import ipaddress, os, runpy, socket, sys

umask, redirect_port, script = sys.argv[1:4]
if umask != "-":
    os.umask(int(umask, 8))

_real_getaddrinfo = socket.getaddrinfo

def _loopback_getaddrinfo(host, *args, **kwargs):
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    if name is not None and name.lower() != "localhost":
        try:
            allowed = ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            allowed = False
        if not allowed:
            raise socket.gaierror(socket.EAI_NONAME, "test launcher: %r is not a loopback host" % name)
    return _real_getaddrinfo(host, *args, **kwargs)

socket.getaddrinfo = _loopback_getaddrinfo

if redirect_port != "-":
    import http.client

    class _LoopbackConnection(http.client.HTTPConnection):
        def __init__(self, host, port=None, timeout=socket._GLOBAL_DEFAULT_TIMEOUT,
                     source_address=None, **kwargs):
            super().__init__("127.0.0.1", int(redirect_port), timeout)

    http.client.HTTPSConnection = _LoopbackConnection

sys.argv = [script] + sys.argv[4:]
sys.path[0] = os.path.dirname(os.path.abspath(script))
runpy.run_path(script, run_name="__main__")
"""

_NETRC_DROPPED_VARIABLES = (
    "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
    "NETRC", "SLICEOFML_API_URL", "SLICEOFML_BEARER_TOKEN", "FORCE_COLOR", "COLUMNS",
)


def _netrc_environment(home, api_url, netrc_path=None, extra=None):
    environ = {
        name: value for name, value in os.environ.items() if name not in _NETRC_DROPPED_VARIABLES
    }
    environ.update(
        HOME=home,
        SLICEOFML_API_URL=api_url,
        SLICEOFML_RETRY_DELAY="0.01",
        NO_COLOR="1",
        PYTHONIOENCODING="utf-8",
    )
    if netrc_path is not None:
        environ["NETRC"] = netrc_path
    environ.update(extra or {})
    return environ


def _netrc_command(args, umask=None, redirect_port=None):
    return [
        sys.executable, "-c", _NETRC_LAUNCHER,
        umask or "-", str(redirect_port) if redirect_port else "-", _NETRC_SCRIPT,
    ] + list(args)


def _netrc_run(args, home, api_url, stdin="", netrc_path=None, umask=None, redirect_port=None,
               extra_env=None):
    return subprocess.run(
        _netrc_command(args, umask, redirect_port),
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_netrc_environment(home, api_url, netrc_path, extra_env),
        universal_newlines=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
    )


# ----------------------------------------------------------------------------------------------
# An independent netrc scanner: finds the byte range of each entry of one machine, so a test
# can compare everything outside that entry byte for byte.
# ----------------------------------------------------------------------------------------------
_NETRC_TOKEN = re.compile(rb"\S+")
_NETRC_VALUE_KEYWORDS = (b"login", b"password", b"account")


def _netrc_scan(data):
    """Return (entries, open_macro) for the netrc bytes.

    Each entry is a dict with `name` (None for `default`), `start` and `end` byte offsets. An
    entry starts at the beginning of the line of its `machine` keyword and ends after the line
    ending of its last value, unless more tokens follow on that line. open_macro is True when
    the file ends inside a macro body that has no closing empty line.
    """
    entries = []
    current = None
    in_macro = False
    expect = "keyword"  # "keyword", "name", "value", "macro-name"
    offset = 0
    for line in data.splitlines(True):
        line_start = offset
        offset += len(line)
        if in_macro:
            if line.rstrip(b"\r\n") == b"":
                in_macro = False
            continue
        macro_after_line = False
        for match in _NETRC_TOKEN.finditer(line):
            token = match.group()
            token_start = line_start + match.start()
            token_end = line_start + match.end()
            if expect == "keyword" and token.startswith(b"#"):
                break  # A comment runs to the end of the line.
            if expect == "name":
                current["name"] = token
                current["last"] = (token_end, line_start + len(line))
                expect = "keyword"
            elif expect == "value":
                current["last"] = (token_end, line_start + len(line))
                expect = "keyword"
            elif expect == "macro-name":
                expect = "keyword"
                macro_after_line = True
                break  # The rest of the macdef line is ignored; the body starts below.
            elif token in (b"machine", b"default", b"macdef"):
                current = None
                if token != b"macdef":
                    prefix = line[: match.start()]
                    start = line_start if prefix.strip() == b"" else token_start
                    current = {"name": None, "start": start, "last": (token_end, offset)}
                    entries.append(current)
                    expect = "name" if token == b"machine" else "keyword"
                else:
                    expect = "macro-name"
            elif token in _NETRC_VALUE_KEYWORDS and current is not None:
                expect = "value"
            else:
                expect = "keyword"  # An unknown token: not ours to judge here.
        if macro_after_line:
            in_macro = True
    for entry in entries:
        last_end, line_end = entry.pop("last")
        rest = data[last_end:line_end]
        tail = rest.strip()
        entry["end"] = line_end if tail == b"" or tail.startswith(b"#") else last_end
    return entries, in_macro


def _netrc_spans(data, machine):
    entries, _ = _netrc_scan(data)
    return [(entry["start"], entry["end"]) for entry in entries if entry["name"] == machine]


def _netrc_remove_spans(data, spans):
    kept = []
    position = 0
    for start, end in spans:
        kept.append(data[position:start])
        position = end
    kept.append(data[position:])
    return b"".join(kept)


def _netrc_line_ending(data):
    return b"\r\n" if data and b"\r\n" in data else b"\n"


def _netrc_allowed_rests(before, machines):
    """Return the acceptable files once the machines' entries are taken out of a rewrite of before.

    Besides the unchanged bytes, one line ending may be added at the end where the file ended
    without one. It may also be added where the file ended inside an open macro, because that
    empty line closes the macro, so an entry after it is not read as part of the macro body.
    """
    if before is None:
        return {b""}
    rest = before
    for machine in machines:
        rest = _netrc_remove_spans(rest, _netrc_spans(rest, machine))
    allowed = {rest}
    eol = _netrc_line_ending(before)
    if rest and not rest.endswith(b"\n"):
        allowed.add(rest + eol)
    if _netrc_scan(rest)[1]:
        allowed.add(rest + eol)
    return allowed


def _netrc_parse(path):
    """Return (hosts, macros) as this Python's netrc module reads path, or None if it rejects it."""
    try:
        parsed = netrc.netrc(path)
    except netrc.NetrcParseError:
        return None
    return parsed.hosts, parsed.macros


def _netrc_parse_bytes(data, scratch_dir):
    if data is None:
        return {}, {}
    path = os.path.join(scratch_dir, "parse-%d.netrc" % random.randrange(10 ** 9))
    with open(path, "wb") as handle:
        handle.write(data)
    try:
        return _netrc_parse(path)
    finally:
        os.remove(path)


def _netrc_read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _netrc_write(path, data, mode=0o600):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _netrc_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _netrc_method_name(case):
    return case.replace("-", "_")


# ----------------------------------------------------------------------------------------------
# Fake X API: the token endpoint and an empty search, on 127.0.0.1 port 0.
# ----------------------------------------------------------------------------------------------
class _NetrcApiHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def _send_json(self, status, document):
        body = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.requests.append(
            ("POST", self.path, self.headers.get("Authorization"), body)
        )
        if self.path == "/oauth2/token":
            self._send_json(200, {"token_type": "bearer", "access_token": _NETRC_SERVER_TOKEN})
        else:
            self._send_json(404, {"title": "Not Found", "detail": self.path})

    def do_GET(self):
        self.server.requests.append(("GET", self.path, self.headers.get("Authorization"), b""))
        if self.path.startswith("/2/tweets/search/recent"):
            self._send_json(200, {"meta": {"result_count": 0}})
        else:
            self._send_json(404, {"title": "Not Found", "detail": self.path})


class _NetrcTestCase(unittest.TestCase):
    """Starts the fake API once per class and gives each test its own HOME."""

    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NetrcApiHandler)
        cls.server.daemon_threads = True
        cls.server.requests = []
        cls.server_thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.server_thread.start()
        cls.api_url = "http://127.0.0.1:%d" % cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.server_thread.join()

    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="sliceofml-netrc-")
        self.addCleanup(shutil.rmtree, self.home, True)
        self.netrc_path = os.path.join(self.home, ".netrc")
        self.scratch = os.path.join(self.home, "scratch")
        os.mkdir(self.scratch)
        del self.server.requests[:]

    # Runs ------------------------------------------------------------------------------------

    def token_login(self, token, app, api_url="https://api.x.com", **kwargs):
        return _netrc_run(
            ["login", "--with-token", "--app-name", app], self.home, api_url,
            stdin=token + "\n", **kwargs
        )

    def interactive_login(self, app, relogin=False, **kwargs):
        args = ["login", "--relogin"] if relogin else ["login"]
        return _netrc_run(
            args, self.home, self.api_url, stdin="test-key\ntest-secret\n%s\n" % app, **kwargs
        )

    def logout(self, api_url="https://api.x.com", **kwargs):
        return _netrc_run(["logout"], self.home, api_url, **kwargs)

    def status(self, api_url="https://api.x.com", **kwargs):
        return _netrc_run(["status"], self.home, api_url, **kwargs)

    # Checks ----------------------------------------------------------------------------------

    def assertMessage(self, result, expected):
        """Check stderr has the expected line once, and that every other line is a warning."""
        lines = result.stderr.splitlines()
        self.assertIn(expected, lines)
        self.assertEqual(lines.count(expected), 1, result.stderr)
        for line in lines:
            if line != expected:
                self.assertTrue(line.startswith("sliceofml: warning: "), line)

    def assertLoggedIn(self, path, before, machine, app, token):
        """Check the file at path is before with exactly one entry of ours, for app and token."""
        after = _netrc_read(path)
        self.assertIsNotNone(after, "%s was not written" % path)
        entry = b"machine %s login %s password %s" % (
            machine, app.encode("utf-8"), token.encode("utf-8")
        )
        entry += _netrc_line_ending(before)
        spans = _netrc_spans(after, machine)
        self.assertEqual([after[start:end] for start, end in spans], [entry], after)
        rest = _netrc_remove_spans(after, spans)
        self.assertIn(rest, _netrc_allowed_rests(before, [machine]), after)

        parsed = _netrc_parse(path)
        self.assertIsNotNone(parsed, "the written file does not parse: %r" % after)
        hosts, macros = parsed
        name = machine.decode("ascii")
        self.assertIn(name, hosts)
        self.assertEqual(hosts[name][0], app)
        self.assertEqual(hosts[name][2], token)
        self.assertOthersParsed(before, hosts, macros, [name])

    def assertOthersParsed(self, before, hosts, macros, ours):
        parsed_before = _netrc_parse_bytes(before, self.scratch)
        if parsed_before is None:
            return  # Nothing to compare with: this Python rejected the file before the change.
        hosts_before, macros_before = parsed_before
        self.assertEqual(
            {host: value for host, value in hosts.items() if host not in ours},
            {host: value for host, value in hosts_before.items() if host not in ours},
        )
        self.assertEqual(macros, macros_before)

    def assertLoggedOut(self, path, before, machine):
        """Check no entry of ours is left and everything else of before is unchanged."""
        after = _netrc_read(path)
        if before is None:
            self.assertIn(after, (None, b""))
            return
        self.assertIsNotNone(after, "%s was removed" % path)
        self.assertEqual(_netrc_spans(after, machine), [], after)
        self.assertIn(after, _netrc_allowed_rests(before, [machine]), after)
        parsed = _netrc_parse(path)
        if _netrc_parse_bytes(before, self.scratch) is not None:
            self.assertIsNotNone(parsed, "the rewritten file does not parse: %r" % after)
        if parsed is not None:
            self.assertNotIn(machine.decode("ascii"), parsed[0])
            self.assertOthersParsed(before, parsed[0], parsed[1], [machine.decode("ascii")])

    def assertRejectedUntouched(self, result, path, before, paths_named=None):
        """Check a run that rejected a bad file: exit 1, one line naming file and line, no change."""
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(_netrc_read(path), before)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(
            any(name in lines[0] for name in (paths_named or [path])), lines[0]
        )
        self.assertRegex(lines[0], r"\bline \d+")

    def assertPrivate(self, path):
        if _NETRC_POSIX:
            self.assertEqual(oct(_netrc_mode(path)), oct(0o600))


# ----------------------------------------------------------------------------------------------
# Every case: login with a token, interactive login, relogin, logout, through a symbolic link.
# ----------------------------------------------------------------------------------------------
class NetrcCaseTests(_NetrcTestCase):
    """Runs login and logout on each netrc case. The methods below are made per case."""

    def setup_case(self, case, data=None, path=None):
        data = _NETRC_CASES[case] if data is None else data
        path = path or self.netrc_path
        if data is not None:
            _netrc_write(path, data)
        return data

    def check_login_run(self, case, result, path, before, machine, app, token, message_path):
        host = machine.split(b"@", 1)[1].decode("ascii")
        if case in _NETRC_REJECTED and result.returncode != 0:
            self.assertRejectedUntouched(result, path, before, [message_path, path])
            return False
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertMessage(
            result,
            'Logged in to %s as app "%s". Saved the bearer token in %s.' % (host, app, message_path),
        )
        self.assertLoggedIn(path, before, machine, app, token)
        self.assertPrivate(path)
        return True

    def check_logout_run(self, case, result, path, before, machine, message_path, had_entry):
        host = machine.split(b"@", 1)[1].decode("ascii")
        if case in _NETRC_REJECTED and result.returncode != 0:
            self.assertRejectedUntouched(result, path, before, [message_path, path])
            return
        self.assertEqual(result.returncode, 0, result.stderr)
        if had_entry:
            expected = "Logged out: removed the entry for sliceofml@%s from %s." % (host, message_path)
        else:
            expected = "Not logged in: %s has no entry for sliceofml@%s." % (message_path, host)
        self.assertMessage(result, expected)
        after = _netrc_read(path)
        if case in _NETRC_REJECTED and after == before:
            return  # The file this Python rejects was left exactly as it was, which is acceptable.
        self.assertLoggedOut(path, before, machine)
        if after is not None:
            self.assertPrivate(path)

    def run_token_login_case(self, case):
        before = self.setup_case(case)
        machine = b"sliceofml@api.x.com"
        token = "tok-%s" % case[:2]
        result = self.token_login(token, "App%s" % case[:2])
        if self.check_login_run(case, result, self.netrc_path, before, machine,
                                "App%s" % case[:2], token, self.netrc_path):
            had_entry = True
        else:
            had_entry = bool(_netrc_spans(before or b"", machine))
        result = self.logout()
        self.check_logout_run(case, result, self.netrc_path, before, machine, self.netrc_path,
                              had_entry)

    def run_logout_case(self, case):
        before = self.setup_case(case)
        machine = b"sliceofml@api.x.com"
        had_entry = bool(_netrc_spans(before or b"", machine))
        result = self.logout()
        self.check_logout_run(case, result, self.netrc_path, before, machine, self.netrc_path,
                              had_entry)
        if not had_entry and result.returncode == 0:
            self.assertEqual(_netrc_read(self.netrc_path), before)
        if before is None:
            self.assertFalse(os.path.lexists(self.netrc_path))

    def run_interactive_case(self, case):
        before = self.setup_case(case)
        machine = b"sliceofml@127.0.0.1"
        result = self.interactive_login("WebApp")
        logged_in = self.check_login_run(case, result, self.netrc_path, before, machine,
                                         "WebApp", _NETRC_SERVER_TOKEN, self.netrc_path)
        result = _netrc_run(["logout"], self.home, self.api_url)
        self.check_logout_run(case, result, self.netrc_path, before, machine, self.netrc_path,
                              logged_in)

    def run_relogin_case(self, case):
        # The case with the API host replaced by the fake API's, so our entries in it are
        # replaced by the interactive login and lookalikes such as `machine 127.0.0.1` appear.
        original = _NETRC_CASES[case]
        data = None if original is None else original.replace(b"api.x.com", b"127.0.0.1")
        before = self.setup_case(case, data)
        machine = b"sliceofml@127.0.0.1"
        result = self.interactive_login("WebApp", relogin=True)
        logged_in = self.check_login_run(case, result, self.netrc_path, before, machine,
                                         "WebApp", _NETRC_SERVER_TOKEN, self.netrc_path)
        if logged_in:
            self.assertEqual(
                [request[:2] for request in self.server.requests], [("POST", "/oauth2/token")]
            )
        had_entry = logged_in or bool(_netrc_spans(before or b"", machine))
        result = _netrc_run(["logout"], self.home, self.api_url)
        self.check_logout_run(case, result, self.netrc_path, before, machine, self.netrc_path,
                              had_entry)

    @unittest.skipUnless(_NETRC_POSIX, "symbolic links need POSIX")
    def run_symlink_case(self, case):
        target_dir = os.path.join(self.home, "dotfiles")
        os.mkdir(target_dir)
        target = os.path.join(target_dir, "netrc")
        before = self.setup_case(case, path=target)
        os.symlink(os.path.join("dotfiles", "netrc"), self.netrc_path)
        machine = b"sliceofml@api.x.com"
        paths = (self.netrc_path, os.path.realpath(target))

        result = self.token_login("tok-link", "LinkApp")
        if case in _NETRC_REJECTED and result.returncode != 0:
            self.assertRejectedUntouched(result, target, before, list(paths))
        else:
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertLoggedIn(target, before, machine, "LinkApp", "tok-link")
            self.assertPrivate(target)
        self.assertTrue(os.path.islink(self.netrc_path))
        self.assertEqual(os.readlink(self.netrc_path), os.path.join("dotfiles", "netrc"))

        result = self.logout()
        if case in _NETRC_REJECTED and result.returncode != 0:
            self.assertRejectedUntouched(result, target, before, list(paths))
        else:
            self.assertEqual(result.returncode, 0, result.stderr)
            if not (case in _NETRC_REJECTED and _netrc_read(target) == before):
                self.assertLoggedOut(target, before, machine)
        self.assertTrue(os.path.islink(self.netrc_path))
        self.assertEqual(os.readlink(self.netrc_path), os.path.join("dotfiles", "netrc"))
        if os.path.exists(target):
            self.assertPrivate(target)

    def test_rejected_cases_match_python(self):
        rejected = set()
        for case, data in _NETRC_CASES.items():
            if data is not None and _netrc_parse_bytes(data, self.scratch) is None:
                rejected.add(case)
        self.assertEqual(rejected, _NETRC_REJECTED)


def _netrc_add_case_tests():
    kinds = (
        ("token_login", NetrcCaseTests.run_token_login_case),
        ("logout", NetrcCaseTests.run_logout_case),
        ("interactive", NetrcCaseTests.run_interactive_case),
        ("relogin", NetrcCaseTests.run_relogin_case),
        ("symlink", NetrcCaseTests.run_symlink_case),
    )
    for kind, runner in kinds:
        for case in _NETRC_CASES:
            def test(self, runner=runner, case=case):
                runner(self, case)
            test.__name__ = "test_%s_%s" % (kind, _netrc_method_name(case))
            setattr(NetrcCaseTests, test.__name__, test)


_netrc_add_case_tests()


# ----------------------------------------------------------------------------------------------
# File modes, NETRC, rejected values, undecodable files.
# ----------------------------------------------------------------------------------------------
class NetrcFileTests(_NetrcTestCase):

    @unittest.skipUnless(_NETRC_POSIX, "file modes need POSIX")
    def test_new_file_private_whatever_umask(self):
        for umask in ("000", "022"):
            with self.subTest(umask=umask):
                if os.path.exists(self.netrc_path):
                    os.unlink(self.netrc_path)
                result = self.token_login("tok-new", "NewApp", umask=umask)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(
                    _netrc_read(self.netrc_path),
                    b"machine sliceofml@api.x.com login NewApp password tok-new\n",
                )
                self.assertEqual(oct(_netrc_mode(self.netrc_path)), oct(0o600))

    def test_entry_without_value_left_alone(self):
        # `login` with nothing after it: Python 3.11+ reads an empty login, so the file parses, but
        # an entry added after it would become that login's value. Older Pythons reject the file.
        before = b"machine x login\n"
        _netrc_write(self.netrc_path, before)
        result = self.token_login("tok-after", "App")
        self.assertEqual(result.returncode, 1)
        if sys.version_info >= (3, 11):
            expected = ("sliceofml: error: %s: Python's netrc module could not parse the file after the edit "
                        "(line 2 of the edited file): bad follower token 'sliceofml@api.x.com'; left "
                        "unchanged. An entry that ends without a value (such as `login` with nothing after it) "
                        "takes in the next entry; complete it, then try again\n" % self.netrc_path)
        else:
            expected = ("sliceofml: error: %s, line 2: cannot parse the netrc file (malformed machine entry x "
                        "terminated by ''); fix that line, then try again\n" % self.netrc_path)
        self.assertEqual(result.stderr, expected)
        self.assertEqual(_netrc_read(self.netrc_path), before)

    @unittest.skipUnless(_NETRC_POSIX, "file modes need POSIX")
    def test_mode_0644_becomes_0600(self):
        before = _NETRC_CASES["03-one-line-entries"]
        _netrc_write(self.netrc_path, before, 0o644)
        result = self.token_login("tok-mode", "ModeApp")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(oct(_netrc_mode(self.netrc_path)), oct(0o600))
        self.assertLoggedIn(self.netrc_path, before, b"sliceofml@api.x.com", "ModeApp", "tok-mode")

    @unittest.skipUnless(_NETRC_POSIX, "file modes need POSIX")
    def test_mode_0755_becomes_0600(self):
        # An execute bit has no use on a netrc file, so the rewritten file is plain 0600 too.
        before = _NETRC_CASES["03-one-line-entries"]
        for mode in (0o755, 0o700):
            with self.subTest(mode=oct(mode)):
                _netrc_write(self.netrc_path, before, mode)
                result = self.token_login("tok-mode", "ModeApp")
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(oct(_netrc_mode(self.netrc_path)), oct(0o600))

    @unittest.skipUnless(_NETRC_POSIX, "file modes need POSIX")
    def test_same_token_mode_0600(self):
        # Storing the token that is already there changes no byte but must still end at 0600.
        before = b"machine sliceofml@api.x.com login ModeApp password tok-mode\n"
        _netrc_write(self.netrc_path, before, 0o644)
        result = self.token_login("tok-mode", "ModeApp")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(_netrc_read(self.netrc_path), before)
        self.assertEqual(oct(_netrc_mode(self.netrc_path)), oct(0o600))

    @unittest.skipUnless(_NETRC_POSIX, "file modes need POSIX")
    def test_mode_0400_rejected(self):
        # The tool looks at the owner write bit itself, so this holds when the tests run as root,
        # who could write the file anyway.
        before = _NETRC_CASES["04-ours-one-line-first"]
        _netrc_write(self.netrc_path, before, 0o400)
        for result in (self.token_login("tok-ro", "RoApp"), self.logout()):
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertIn(self.netrc_path, result.stderr)
            self.assertEqual(_netrc_read(self.netrc_path), before)
            self.assertEqual(oct(_netrc_mode(self.netrc_path)), oct(0o400))

    def test_netrc_variable_names_file(self):
        other_dir = os.path.join(self.home, "config")
        os.mkdir(other_dir)
        other = os.path.join(other_dir, "my-netrc")
        before = _NETRC_CASES["03-one-line-entries"]
        _netrc_write(other, before)

        result = self.token_login("tok-env", "EnvApp", netrc_path=other)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertMessage(
            result, 'Logged in to api.x.com as app "EnvApp". Saved the bearer token in %s.' % other
        )
        self.assertLoggedIn(other, before, b"sliceofml@api.x.com", "EnvApp", "tok-env")
        self.assertFalse(os.path.lexists(self.netrc_path))

        result = self.status(netrc_path=other)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(other, result.stdout)

        result = self.logout(netrc_path=other)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(_netrc_read(other), before)
        self.assertFalse(os.path.lexists(self.netrc_path))

    def test_invalid_app_names_rejected(self):
        before = _NETRC_CASES["04-ours-one-line-first"]
        _netrc_write(self.netrc_path, before)
        for app in ("my app", 'my"app', "my'app", "my\\app", "#app", "my\tapp"):
            with self.subTest(app=app):
                result = self.token_login("tok-valid", app)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("app name", result.stderr)
                self.assertEqual(_netrc_read(self.netrc_path), before)

    def test_invalid_interactive_app_name(self):
        before = _NETRC_CASES["03-one-line-entries"]
        _netrc_write(self.netrc_path, before)
        result = self.interactive_login("my app")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("app name", result.stderr)
        self.assertEqual(_netrc_read(self.netrc_path), before)

    def test_invalid_tokens_rejected(self):
        before = _NETRC_CASES["04-ours-one-line-first"]
        _netrc_write(self.netrc_path, before)
        for token in ("", "tok en", "tok\ten", "tok\"en"):
            with self.subTest(token=token):
                result = self.token_login(token, "ValidApp")
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("token", result.stderr)
                self.assertEqual(_netrc_read(self.netrc_path), before)

    def test_undecodable_file_untouched(self):
        before = (
            b"machine git.example.org login dev password devpass\n"
            b"machine files.example.net login ops password p\xff\xfe\n"
        )
        _netrc_write(self.netrc_path, before)
        for result in (self.token_login("tok-bytes", "ByteApp"), self.logout(), self.status()):
            self.assertEqual(result.returncode, 1, result.stderr)
            lines = result.stderr.splitlines()
            self.assertEqual(len(lines), 1, result.stderr)
            self.assertIn(self.netrc_path, lines[0])
            self.assertIn("line 2", lines[0])
            self.assertEqual(_netrc_read(self.netrc_path), before)

    def test_lookalike_hosts_untouched(self):
        before = _NETRC_CASES["06-lookalike-hosts"]
        _netrc_write(self.netrc_path, before)
        result = self.token_login("tok-look", "LookApp")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            _netrc_read(self.netrc_path),
            before + b"machine sliceofml@api.x.com login LookApp password tok-look\n",
        )
        result = self.logout()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(_netrc_read(self.netrc_path), before)
        result = self.logout()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertMessage(
            result,
            "Not logged in: %s has no entry for sliceofml@api.x.com." % self.netrc_path,
        )
        self.assertEqual(_netrc_read(self.netrc_path), before)

    def test_already_logged_in(self):
        before = _NETRC_CASES["04-ours-one-line-first"]
        _netrc_write(self.netrc_path, before)
        # Not the fake API's URL: a login that went on would fail to reach api.x.com.
        result = _netrc_run(["login"], self.home, "https://api.x.com", stdin="key\nsecret\nApp\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(
            lines[0].startswith(
                'Already logged in to api.x.com as app "OldApp" (%s). ' % self.netrc_path
            ),
            lines[0],
        )
        self.assertIn("sliceofml.py login --relogin", lines[0])
        self.assertEqual(_netrc_read(self.netrc_path), before)

    def test_token_request_form(self):
        result = self.interactive_login("FormApp")
        self.assertEqual(result.returncode, 0, result.stderr)
        basic = base64.b64encode(b"test-key:test-secret").decode("ascii")
        self.assertEqual(
            self.server.requests,
            [("POST", "/oauth2/token", "Basic " + basic, b"grant_type=client_credentials")],
        )
        self.assertEqual(
            _netrc_read(self.netrc_path),
            b"machine sliceofml@127.0.0.1 login FormApp password AAAAtest%2Ftoken%3Dxyz\n",
        )
        self.assertPrivate(self.netrc_path)


# ----------------------------------------------------------------------------------------------
# status and the 2022 `machine api.twitter.com` entry.
# ----------------------------------------------------------------------------------------------
class NetrcStatusTests(_NetrcTestCase):
    # Made-up token; no 5-character piece of it may appear in any output.
    TOKEN = "Q7zR9kLmN2pX8vT4"

    def assertTokenHidden(self, result, token):
        output = result.stdout + result.stderr
        for start in range(len(token) - 4):
            self.assertNotIn(token[start:start + 5], output)

    def test_status_shows_netrc_entry(self):
        _netrc_write(
            self.netrc_path,
            b"machine sliceofml@127.0.0.1 login StatusApp password %s\n" % self.TOKEN.encode(),
        )
        result = self.status(api_url=self.api_url)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        self.assertIn(self.netrc_path, result.stdout)
        self.assertTrue(
            any(line.startswith("App name:") and "StatusApp" in line
                for line in result.stdout.splitlines()),
            result.stdout,
        )
        self.assertTokenHidden(result, self.TOKEN)
        self.assertEqual(self.server.requests, [])

    @unittest.skipUnless(_NETRC_POSIX, "file modes need POSIX")
    def test_status_warns_readable(self):
        for mode in (0o644, 0o640, 0o604):
            with self.subTest(mode=oct(mode)):
                _netrc_write(
                    self.netrc_path,
                    b"machine sliceofml@127.0.0.1 login StatusApp password %s\n"
                    % self.TOKEN.encode(),
                    mode,
                )
                result = self.status(api_url=self.api_url)
                self.assertEqual(result.returncode, 0, result.stderr)
                warnings = [line for line in result.stderr.splitlines()
                            if line.startswith("sliceofml: warning:")]
                self.assertEqual(len(warnings), 1, result.stderr)
                self.assertIn(self.netrc_path, warnings[0])
                self.assertTokenHidden(result, self.TOKEN)

    def test_status_warns_api_host_entry(self):
        ours = b"machine sliceofml@api.x.com login StatusApp password %s\n" % self.TOKEN.encode()
        _netrc_write(self.netrc_path, ours)
        result = self.status()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")

        _netrc_write(self.netrc_path, ours + b"machine api.x.com login c password d\n")
        result = self.status()
        self.assertEqual(result.returncode, 0, result.stderr)
        warnings = [line for line in result.stderr.splitlines()
                    if line.startswith("sliceofml: warning:")]
        self.assertEqual(len(warnings), 1, result.stderr)
        self.assertIn("machine api.x.com", warnings[0])
        self.assertTokenHidden(result, self.TOKEN)

    def test_status_env_token_hidden(self):
        result = self.status(api_url=self.api_url,
                             extra_env={"SLICEOFML_BEARER_TOKEN": self.TOKEN})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("SLICEOFML_BEARER_TOKEN", result.stdout)
        self.assertTokenHidden(result, self.TOKEN)

    def test_status_not_logged_in(self):
        result = self.status(api_url=self.api_url)
        self.assertEqual(result.returncode, 4, result.stderr)
        self.assertFalse(os.path.lexists(self.netrc_path))

    def test_status_legacy_entry(self):
        _netrc_write(self.netrc_path, _NETRC_CASES["17-legacy-original-tool"])
        result = self.status()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("api.twitter.com", result.stdout)
        self.assertIn("SliceOfML", result.stdout)
        self.assertTokenHidden(result, "LEGACYTOKEN")
        self.assertEqual(_netrc_read(self.netrc_path), _NETRC_CASES["17-legacy-original-tool"])

    def test_status_prefers_new_entry(self):
        data = (
            _NETRC_CASES["17-legacy-original-tool"]
            + b"machine sliceofml@api.x.com login NewApp password %s\n" % self.TOKEN.encode()
        )
        _netrc_write(self.netrc_path, data)
        result = self.status()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("NewApp", result.stdout)
        self.assertNotIn("SliceOfML", result.stdout)
        self.assertTokenHidden(result, self.TOKEN)
        self.assertTokenHidden(result, "LEGACYTOKEN")

    def test_legacy_entry_other_host(self):
        # The fallback is for api.x.com only: for any other API host there is no token.
        _netrc_write(self.netrc_path, _NETRC_CASES["17-legacy-original-tool"])
        result = self.status(api_url=self.api_url)
        self.assertEqual(result.returncode, 4, result.stderr)

    def test_slice_uses_legacy_entry(self):
        # The launcher sends https://api.x.com requests to the fake API over plain HTTP.
        _netrc_write(self.netrc_path, _NETRC_CASES["17-legacy-original-tool"])
        result = _netrc_run(
            ["slice", "--json", "--max-pages", "1", "--timeout", "10"], self.home,
            "https://api.x.com", redirect_port=self.server.server_address[1],
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout)["posts"], [])
        self.assertTrue(self.server.requests)
        for method, path, authorization, _ in self.server.requests:
            self.assertEqual(method, "GET")
            self.assertTrue(path.startswith("/2/tweets/search/recent?"), path)
            self.assertEqual(authorization, "Bearer LEGACYTOKEN")


# ----------------------------------------------------------------------------------------------
# Several processes at once, and processes killed in the middle of a login.
# ----------------------------------------------------------------------------------------------
class NetrcConcurrencyTests(_NetrcTestCase):

    def test_parallel_logins_keep_all(self):
        before = _NETRC_CASES["11-macdef"] + _NETRC_CASES["07-comments"]
        _netrc_write(self.netrc_path, before)
        hosts = ["127.0.0.%d" % number for number in range(2, 10)]
        machines = [b"sliceofml@" + host.encode("ascii") for host in hosts]
        for round_number in range(2):
            # --with-token stores the token without contacting the API URL, so port 9 is never used.
            processes = [
                subprocess.Popen(
                    _netrc_command(["login", "--with-token", "--app-name", "App%d" % index]),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=_netrc_environment(self.home, "http://%s:9" % host),
                    universal_newlines=True,
                )
                for index, host in enumerate(hosts)
            ]
            outputs = [
                process.communicate("tok-%d-%d\n" % (round_number, index), timeout=60)
                for index, process in enumerate(processes)
            ]
            for process, (_, stderr) in zip(processes, outputs):
                self.assertEqual(process.returncode, 0, stderr)

            after = _netrc_read(self.netrc_path)
            hosts_after, macros_after = _netrc_parse(self.netrc_path)
            for index, machine in enumerate(machines):
                login, _, password = hosts_after[machine.decode("ascii")]
                self.assertEqual((login, password), ("App%d" % index, "tok-%d-%d" % (round_number, index)))
            for index, machine in enumerate(machines):
                spans = _netrc_spans(after, machine)
                entry = b"machine %s login App%d password tok-%d-%d\n" % (
                    machine, index, round_number, index
                )
                self.assertEqual([after[start:end] for start, end in spans], [entry])
            self.assertEqual(_netrc_remove_all(after, machines), before)
            self.assertPrivate(self.netrc_path)

        processes = [
            subprocess.Popen(
                _netrc_command(["logout"]),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=_netrc_environment(self.home, "http://%s:9" % host),
                universal_newlines=True,
            )
            for host in hosts
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=60)
            self.assertEqual(process.returncode, 0, stderr)
        self.assertEqual(_netrc_read(self.netrc_path), before)

    @unittest.skipUnless(_NETRC_POSIX, "SIGKILL needs POSIX")
    def test_killed_login_old_or_new(self):
        # A login killed at any moment must leave the netrc file either as it was or as the
        # finished login writes it. Temporary files that a killed process could not remove may
        # remain, but they must not be readable by others, because they contain the token.
        before = _NETRC_CASES["05-ours-three-lines-middle"].replace(b"api.x.com", b"127.0.0.1")
        _netrc_write(self.netrc_path, before)
        seed = random.randrange(10 ** 6)
        chooser = random.Random(seed)
        machine = b"sliceofml@127.0.0.1"
        api_url = "http://127.0.0.1:9"

        started = time.monotonic()
        result = self.token_login("tok-warmup", "KillApp", api_url=api_url)
        full_run = time.monotonic() - started
        self.assertEqual(result.returncode, 0, result.stderr)

        current = _netrc_read(self.netrc_path)
        for attempt in range(40):
            token = "tok-kill-%d" % attempt
            process = subprocess.Popen(
                _netrc_command(["login", "--with-token", "--app-name", "KillApp"]),
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=_netrc_environment(self.home, api_url),
            )
            process.stdin.write(token.encode("ascii") + b"\n")
            process.stdin.close()
            time.sleep(chooser.uniform(0.5, 1.05) * full_run)
            process.kill()
            process.wait()

            after = _netrc_read(self.netrc_path)
            context = "seed %d, attempt %d: %r" % (seed, attempt, after)
            if after != current:
                self.assertIsNotNone(after, context)
                spans = _netrc_spans(after, machine)
                expected = b"machine sliceofml@127.0.0.1 login KillApp password %s\n" % (
                    token.encode("ascii")
                )
                self.assertEqual([after[start:end] for start, end in spans], [expected], context)
                self.assertIn(
                    _netrc_remove_spans(after, spans), _netrc_allowed_rests(before, [machine]),
                    context,
                )
            self.assertPrivate(self.netrc_path)
            current = after

        for name in os.listdir(self.home):
            path = os.path.join(self.home, name)
            if name in (".netrc", "scratch") or not os.path.isfile(path):
                continue
            self.assertEqual(_netrc_mode(path) & 0o077, 0, "%s is readable by others" % name)


def _netrc_remove_all(data, machines):
    for machine in machines:
        data = _netrc_remove_spans(data, _netrc_spans(data, machine))
    return data

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


class ReporterTests(unittest.TestCase):
    def test_status_cut_to_width(self):
        stream = io.StringIO()
        reporter = sliceofml.Reporter(stream, True, width=30)
        reporter.progress("weekly", 12, 1234)
        self.assertEqual(stream.getvalue(), "\r\x1b[2Kweekly time window: 12 pages…")

    def test_nothing_after_close(self):
        stream = io.StringIO()
        reporter = sliceofml.Reporter(stream, True, width=80)
        reporter.progress("daily", 1, 100)
        reporter.close()
        reporter.retrying(0.5, 2)
        reporter.countdown("rate limit reached", 3)
        self.assertEqual(stream.getvalue(), "\r\x1b[2Kdaily time window: 1 page, 100 posts read\r\x1b[2K")

    def test_debug_line_starts_a_line(self):
        stream = io.StringIO()
        context = sliceofml.Context({"SLICEOFML_API_URL": "http://127.0.0.1:9"}, io.StringIO(), io.StringIO(),
                                    stream, debug=True)
        context.reporter = sliceofml.Reporter(stream, True, width=80)
        context.reporter.retrying(0.5, 2)
        context.log("GET http://127.0.0.1:9/2/tweets/search/recent")
        self.assertEqual(stream.getvalue(), "\r\x1b[2Kretrying in 0.5 s (attempt 2 of 4) after a failed request"
                                            "\r\x1b[2Ksliceofml: debug: GET http://127.0.0.1:9/2/tweets/search/recent\n")


class StartTimeCorrectionTests(unittest.TestCase):
    def test_minute_bound_gets_margin(self):
        # The 400 names the earliest start_time to the minute, so the real limit may be 59 s later.
        error = sliceofml.APIError("Invalid 'start_time':'2026-11-26T10:00:00Z'. 'start_time' must be on or "
                                   "after 2026-11-27T10:00Z", status=400)
        corrected = sliceofml._corrected_start(error)
        self.assertEqual(format_time(corrected), "2026-11-27T10:03:00Z")
        self.assertGreaterEqual(corrected - parse_time("2026-11-27T10:00:59Z"), 120)

    def test_other_400_not_corrected(self):
        error = sliceofml.APIError("Invalid 'max_results'", status=400)
        self.assertIsNone(sliceofml._corrected_start(error))


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

    def test_hash_word_comments_only_itself(self):
        text = "#note machine sliceofml@api.x.com login A password T\nmachine g login d password p\n"
        self.assertEqual(self.remove(text), "#note\nmachine g login d password p\n")

    def test_lone_hash_comments_the_line(self):
        text = "# machine sliceofml@api.x.com login A password T\nmachine g login d password p\n"
        self.assertEqual(self.remove(text), text)

    def test_cr_only_line_ends(self):
        text = "# creds\rmachine sliceofml@api.x.com login A password T\rmachine g login d password p\r"
        self.assertEqual(self.remove(text), "# creds\rmachine g login d password p\r")
        self.assertEqual(self.edit("# creds\rmachine g login d password p\r"),
                         "# creds\rmachine g login d password p\r"
                         "machine sliceofml@api.x.com login app password TOKEN\r")

    def test_hash_inside_entry_per_lexer(self):
        text = "machine g login d password p #x machine sliceofml@api.x.com login A password T\n"
        old = [entry.name for entry in sliceofml._scan_netrc(text, new_lexer=False)]
        new = [entry.name for entry in sliceofml._scan_netrc(text, new_lexer=True)]
        self.assertEqual(old, ["g", "sliceofml@api.x.com"])
        self.assertEqual(new, ["g"])

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


class NetrcLexerVersionTests(unittest.TestCase):
    """The netrc lexer changed in Python 3.11; these pin down why only plain values are written."""

    def parse(self, text):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        path = os.path.join(folder, "netrc")
        with open(path, "w") as stream:
            stream.write(text)
        return netrc.netrc(path).hosts

    def test_quoted_password(self):
        text = 'machine m login a password "x y"\n'
        if sys.version_info >= (3, 11):
            self.assertEqual(self.parse(text)["m"], ("a", "", "x y"))
        else:
            with self.assertRaises(netrc.NetrcParseError) as caught:
                self.parse(text)
            self.assertEqual(caught.exception.msg, "bad follower token 'y\"'")

    def test_backslash_in_password(self):
        hosts = self.parse("machine m login a password x\\y\n")
        expected = "xy" if sys.version_info >= (3, 11) else "x\\y"
        self.assertEqual(hosts["m"][2], expected)

    def test_quote_and_backslash_rejected(self):
        for value in ('"x', "x\\y"):
            with self.subTest(value=value):
                with self.assertRaises(sliceofml.UsageError):
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
        for version in ("2.7", "3.6", "3.7"):
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

    def test_command_name_in_hints(self):
        cases = {"sliceofml.py": "python3 sliceofml.py", "/home/ada/.local/bin/sliceofml": "sliceofml",
                 "./sliceofml.py": "python3 sliceofml.py", "test_sliceofml.py": "python3 sliceofml.py",
                 "-c": "python3 sliceofml.py", "": "python3 sliceofml.py", "/opt/sliceofml\u00e9": "sliceofml",
                 "/opt/sliceofml\udcff": "sliceofml", "/opt/sliceofml\nx": "sliceofml"}
        for argv0, expected in cases.items():
            with self.subTest(argv0=argv0):
                self.assertEqual(sliceofml.command_name(argv0), expected)

    def test_installed_copy_hints_its_name(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        installed = os.path.join(folder, "sliceofml")
        shutil.copy(SLICEOFML_PATH, installed)
        completed = subprocess.run([sys.executable, installed, "status"], env=_tool_environment({}, folder),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(completed.returncode, 4)
        self.assertIn("Bearer token: none; run `sliceofml login`\n", completed.stdout)

    def test_no_command(self):
        code, out, err = self.run_main([])
        self.assertEqual(code, 2)
        self.assertEqual(err, "sliceofml: error: choose a command: login, slice, status or logout "
                              "(see `python3 sliceofml.py --help`)\n")

    def test_bad_option_value(self):
        code, out, err = self.run_main(["slice", "--top", "0"])
        self.assertEqual(code, 2)
        self.assertEqual(err, "sliceofml: error: argument --top: 0 is not between 1 and 100 "
                              "(see `python3 sliceofml.py slice --help`)\n")

    def test_daily_and_weekly_exclusive(self):
        code, out, err = self.run_main(["slice", "--daily", "--weekly"])
        self.assertEqual(code, 2)
        self.assertEqual(err, "sliceofml: error: argument --weekly: not allowed with argument --daily "
                              "(see `python3 sliceofml.py slice --help`)\n")

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
# On a terminal, under Ctrl-C, with narrow encodings, and as a copied file
# ==============================================================================================


def run_on_terminal(args, env, answers=(), timeout=60, columns=100):
    """Run sliceofml on a new pseudo-terminal, typing `answers` at their prompts.

    `answers` is a list of (prompt, text). Returns (exit code, everything the terminal showed).
    The child gets the terminal as its controlling terminal, so getpass reads from it as it would
    for a person.
    """
    import fcntl
    import pty
    import termios

    pid, master = pty.fork()
    if pid == 0:  # The child: replace this process with the tool.
        try:
            os.execve(sys.executable, [sys.executable, SLICEOFML_PATH] + list(args), env)
        finally:
            os._exit(127)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pending and pending[0][0].encode("utf-8") in output:
            os.write(master, pending.pop(0)[1].encode("utf-8"))
            output += b"\x00"  # Marks where an answer was typed, so each prompt is matched once.
        import select

        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal.
            chunk = b""
        if not chunk:
            break
        output += chunk
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return code, output.replace(b"\x00", b"").decode("utf-8", "replace")


# --help as a user sees it.
MAIN_HELP = (
    'usage: python3 sliceofml.py [-h] [--version] [--debug] COMMAND ...\n'
    '\n'
    'The most-liked machine-learning posts on X of the last day or week.\n'
    '\n'
    'commands:\n'
    '  login   store a bearer token for the X API\n'
    '  slice   show the most-liked machine-learning posts\n'
    '  status  show where the bearer token comes from\n'
    '  logout  remove the bearer token from the netrc file\n'
    '\n'
    'options:\n'
    '  -h, --help  show this help and exit\n'
    '  --version   show the version and exit\n'
    '  --debug     log each HTTP request and show tracebacks\n'
    '\n'
    'exit codes:\n'
    '  0    success, including a time window with no posts\n'
    '  1    failure: network, API error, unreadable netrc file, bad data, paging\n'
    '       stopped early\n'
    '  2    usage error\n'
    '  4    authentication needed: not logged in, key/secret rejected, token\n'
    '       rejected\n'
    '  130  interrupted (Ctrl-C)\n'
    '\n'
    'environment variables:\n'
    '  SLICEOFML_API_URL       API base URL (default https://api.x.com); http://\n'
    '                          only for loopback hosts\n'
    '  SLICEOFML_BEARER_TOKEN  bearer token to use instead of the netrc file; never\n'
    '                          written anywhere\n'
    '  SLICEOFML_RETRY_DELAY   seconds before the first retry of a failed request,\n'
    '                          doubled per retry (default 1)\n'
    '  NETRC                   path of the netrc file (default ~/.netrc)\n'
    '  NO_COLOR                set and non-empty: no colour\n'
    '  FORCE_COLOR             set and non-empty: colour even when stdout is not a\n'
    '                          terminal (NO_COLOR wins)\n'
    '  COLUMNS                 table width in terminal columns\n'
    "  TERM                    'dumb' turns colour off\n"
)

SLICE_HELP = (
    'usage: python3 sliceofml.py slice [-h] [--debug] [--daily | --weekly] [--top N]\n'
    '       [--max-pages N] [--timeout SECONDS] [--max-wait SECONDS] [--workers N]\n'
    '       [--json]\n'
    '\n'
    'Page through recent search for machine-learning posts and print the most liked.\n'
    '\n'
    'options:\n'
    '  -h, --help          show this help and exit\n'
    '  --debug             log each HTTP request and show tracebacks\n'
    '  --daily             posts of the last 24 hours (the default)\n'
    '  --weekly            posts of the last 7 days\n'
    '  --top N             how many posts to show, 1 to 100 (default: 10)\n'
    '  --max-pages N       page budget, 1 to 10000, 100 posts a page (default: 100)\n'
    '  --timeout SECONDS   limit for each HTTP request, 0.1 to 600 (default: 30)\n'
    '  --max-wait SECONDS  maximum wait for a rate-limit reset, 0 to 3600 seconds\n'
    '                      (default: 90)\n'
    '  --workers N         concurrent requests, 1 to 16; 1 reads the window as one\n'
    '                      sequential search (default: 7)\n'
    '  --json              print one JSON document instead of the table\n'
)

LOGIN_HELP = (
    'usage: python3 sliceofml.py login [-h] [--debug] [--relogin] [--with-token]\n'
    '       [--app-name NAME] [--timeout SECONDS]\n'
    '\n'
    "Trade the X app's API key and secret for a bearer token and store it in the\n"
    'netrc file. On a terminal it prompts for them; otherwise it reads three lines\n'
    'from standard input: API key, API key secret, app name.\n'
    '\n'
    'options:\n'
    '  -h, --help         show this help and exit\n'
    '  --debug            log each HTTP request and show tracebacks\n'
    '  --relogin          replace an existing token\n'
    '  --with-token       read a bearer token from standard input instead of key and\n'
    '                     secret\n'
    '  --app-name NAME    app name stored with the token (default: sliceofml)\n'
    '  --timeout SECONDS  limit for the token request, 0.1 to 600 (default: 30)\n'
)


class ArgumentParserTests(unittest.TestCase):
    """The hand-written parser: help text, usage errors and parsed values, as a user sees them."""

    def run_main(self, argv, **environ):
        environ.setdefault("COLUMNS", "80")
        stdout, stderr = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, environ), mock.patch.object(sys, "stdout", stdout), \
                mock.patch.object(sys, "stderr", stderr), mock.patch.object(sys, "argv", ["sliceofml.py"]):
            code = sliceofml.main(argv)
        return code, stdout.getvalue(), stderr.getvalue()

    def parse(self, *words):
        return sliceofml._parse_arguments(list(words))

    def test_main_help(self):
        self.assertEqual(self.run_main(["--help"]), (0, MAIN_HELP, ""))
        self.assertEqual(self.run_main(["-h", "--bogus"]), (0, MAIN_HELP, ""))

    def test_slice_help(self):
        self.assertEqual(self.run_main(["slice", "--help"]), (0, SLICE_HELP, ""))
        self.assertEqual(self.run_main(["--debug", "slice", "-h"]), (0, SLICE_HELP, ""))

    def test_login_help(self):
        self.assertEqual(self.run_main(["login", "-h"]), (0, LOGIN_HELP, ""))

    def test_help_fits_80_columns(self):
        for command in ([], ["login"], ["slice"], ["status"], ["logout"]):
            with self.subTest(command=command):
                code, out, err = self.run_main(command + ["--help"])
                self.assertEqual(code, 0)
                self.assertEqual([line for line in out.splitlines() if len(line) > 79], [])

    def test_help_options_and_defaults(self):
        # The help texts are written out by hand; this keeps them true to the options parsed.
        for command, options in sliceofml._COMMAND_OPTIONS.items():
            with self.subTest(command=command):
                code, out, err = self.run_main([command, "--help"])
                described = {}
                for line in out.split("options:\n", 1)[1].splitlines():
                    if line.startswith("  -"):
                        flag = line.split()[1] if line.startswith("  -h,") else line.split()[0]
                        described[flag] = line
                    elif described and line.startswith("   "):
                        described[flag] += " " + line.strip()
                self.assertEqual(sorted(described), sorted(["--help", "--debug"] + [o.flag for o in options]))
                for option in options:
                    default = re.search(r"\(default: ([^)]*)\)", described[option.flag])
                    if option.convert is None or option.flag == "--app-name":
                        continue
                    self.assertEqual(default.group(1), "%g" % option.default, option.flag)
        self.assertIn("(default: %s)" % sliceofml.DEFAULT_APP_NAME, self.run_main(["login", "-h"])[1])

    def test_help_exit_codes_and_environment(self):
        code, out, err = self.run_main(["--help"])
        codes = out.split("exit codes:\n", 1)[1].split("\n\n", 1)[0]
        self.assertEqual([line.split()[0] for line in codes.splitlines() if line[2] != " "],
                         [str(number) for number in (sliceofml.EXIT_OK, sliceofml.EXIT_FAILURE, sliceofml.EXIT_USAGE,
                                                     sliceofml.EXIT_AUTH, sliceofml.EXIT_INTERRUPTED)])
        names = out.split("environment variables:\n", 1)[1]
        self.assertEqual(tuple(line.split()[0] for line in names.splitlines() if line[2] != " "),
                         sliceofml.ENVIRONMENT)

    def test_help_names_the_installed_command(self):
        with mock.patch.object(sys, "argv", ["/usr/local/bin/sliceofml"]):
            stdout = io.StringIO()
            with mock.patch.object(sys, "stdout", stdout):
                self.assertEqual(sliceofml.main(["status", "-h"]), 0)
        self.assertTrue(stdout.getvalue().startswith("usage: sliceofml status [-h] [--debug]\n"))

    def test_usage_errors(self):
        main_hint = "(see `python3 sliceofml.py --help`)"
        slice_hint = "(see `python3 sliceofml.py slice --help`)"
        cases = [
            ([], "choose a command: login, slice, status or logout " + main_hint),
            (["slise"], "unknown command 'slise'; choose from login, slice, status, logout " + main_hint),
            (["--bogus", "status"], "unrecognized arguments: --bogus (see `python3 sliceofml.py status --help`)"),
            (["slice", "x", "-q"], "unrecognized arguments: x -q " + slice_hint),
            (["slice", "--top"], "argument --top: expected one argument " + slice_hint),
            (["slice", "--top", "--json"], "argument --top: expected one argument " + slice_hint),
            (["slice", "--top", "0"], "argument --top: 0 is not between 1 and 100 " + slice_hint),
            (["slice", "--top=-3"], "argument --top: -3 is not between 1 and 100 " + slice_hint),
            (["slice", "--top", "ten"], "argument --top: 'ten' is not a whole number " + slice_hint),
            (["slice", "--top", "1_0"], "argument --top: '1_0' is not a whole number " + slice_hint),
            (["slice", "--workers", "\u0663"], "argument --workers: '\u0663' is not a whole number " + slice_hint),
            (["slice", "--timeout", "\uff15"], "argument --timeout: '\uff15' is not a number of seconds " + slice_hint),
            (["slice", "--max-pages", "10001"], "argument --max-pages: 10001 is not between 1 and 10000 " + slice_hint),
            (["slice", "--workers", "17"], "argument --workers: 17 is not between 1 and 16 " + slice_hint),
            (["slice", "--timeout", "0"], "argument --timeout: 0 is not between 0.1 and 600 seconds " + slice_hint),
            (["slice", "--timeout", "nan"], "argument --timeout: nan is not between 0.1 and 600 seconds " + slice_hint),
            (["slice", "--max-wait", "soon"], "argument --max-wait: 'soon' is not a number of seconds " + slice_hint),
            (["slice", "--daily", "--weekly"], "argument --weekly: not allowed with argument --daily " + slice_hint),
            (["slice", "--w"], "ambiguous option: --w could match --weekly, --workers " + slice_hint),
            (["slice", "--json=yes"], "argument --json: takes no value, got 'yes' " + slice_hint),
            (["login", "--timeout", "601"], "argument --timeout: 601 is not between 0.1 and 600 seconds "
             "(see `python3 sliceofml.py login --help`)"),
            (["status", "--json"], "unrecognized arguments: --json (see `python3 sliceofml.py status --help`)"),
            (["--", "--help"], "unknown command '--help'; choose from login, slice, status, logout " + main_hint),
            (["slice", "--top 5"], "unrecognized arguments: '--top 5' " + slice_hint),
            (["slice", "", "\x1b[2J"], "unrecognized arguments: '' '\\x1b[2J' " + slice_hint),
            (["status", "--", "--debug"], "unrecognized arguments: --debug (see `python3 sliceofml.py status --help`)"),
            (["--json", "slice"], "--json is an option of slice; put it after the command, as in "
             "`python3 sliceofml.py slice --json` " + main_hint),
            (["--timeout=5", "login"], "--timeout is an option of login and slice; put it after the command, "
             "as in `python3 sliceofml.py login --timeout=5` " + main_hint),
            (["--help=x"], "argument --help: takes no value, got 'x' " + main_hint),
            (["--top", "5", "slice"], "--top is an option of slice; put it after the command, as in "
             "`python3 sliceofml.py slice --top 5` " + main_hint),
            (["--timeout", "5", "slice"], "--timeout is an option of login and slice; put it after the command, "
             "as in `python3 sliceofml.py slice --timeout 5` " + main_hint),
            (["--wee", "slice"], "--wee is an option of slice; put it after the command, as in "
             "`python3 sliceofml.py slice --weekly` " + main_hint),
            (["--top", "slice"], "--top is an option of slice; put it after the command, as in "
             "`python3 sliceofml.py slice --top VALUE` " + main_hint),
            (["--debug"], "choose a command: login, slice, status or logout " + main_hint),
            (["slice", "--top", "9" * 60], "argument --top: %s... is not between 1 and 100 " % ("9" * 37) + slice_hint),
            (["slice", "--top", "x" * 60], "argument --top: '%s...' is not a whole number " % ("x" * 37) + slice_hint),
        ]
        for argv, message in cases:
            with self.subTest(argv=argv):
                self.assertEqual(self.run_main(argv), (2, "", "sliceofml: error: %s\n" % message))

    @unittest.skipUnless(os.path.exists("/dev/full"), "needs /dev/full")
    def test_help_to_full_device(self):
        with open("/dev/full", "w") as full:
            completed = subprocess.run([sys.executable, SLICEOFML_PATH, "--help"], stdout=full,
                                       stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(completed.returncode, 1)
        self.assertEqual(completed.stderr, "sliceofml: error: cannot write to standard output "
                                           "(No space left on device)\n")

    @unittest.skipUnless(os.path.exists("/dev/full"), "needs /dev/full")
    def test_full_stderr_keeps_exit_code(self):
        with open("/dev/full", "w") as full:
            completed = subprocess.run([sys.executable, SLICEOFML_PATH, "slise"], stdout=subprocess.PIPE,
                                       stderr=full)
        self.assertEqual((completed.returncode, completed.stdout), (2, b""))

    def test_first_problem_wins(self):
        # Words are read left to right: a bad value before --help is reported, --help before it wins.
        self.assertEqual(self.run_main(["slice", "--top", "0", "--help"])[0], 2)
        self.assertEqual(self.run_main(["slice", "--help", "--top", "0"]), (0, SLICE_HELP, ""))

    def test_defaults(self):
        args = self.parse("slice")
        self.assertEqual((args.command, args.window, args.top, args.max_pages, args.timeout, args.max_wait,
                          args.workers, args.json, args.debug), ("slice", "daily", 10, 100, 30.0, 90.0, 7,
                                                                 False, False))
        args = self.parse("login")
        self.assertEqual((args.relogin, args.with_token, args.app_name, args.timeout), (False, False, None, 30.0))

    def test_values_and_spellings(self):
        args = self.parse("--debug", "slice", "--week", "--top=3", "--max-p", "7", "--timeout", "2.5",
                          "--max-wait=0", "--workers", "1", "--json")
        self.assertEqual((args.window, args.top, args.max_pages, args.timeout, args.max_wait, args.workers,
                          args.json, args.debug), ("weekly", 3, 7, 2.5, 0.0, 1, True, True))
        self.assertEqual(self.parse("slice", "--debug").debug, True)
        self.assertEqual(self.parse("slice", "--weekly", "--weekly").window, "weekly")
        self.assertEqual(self.parse("slice", "--top", "5", "--top", "6").top, 6)
        self.assertEqual(self.parse("login", "--app-name", "-", "--with").app_name, "-")
        self.assertEqual(self.parse("login", "--app-name=--relogin").app_name, "--relogin")
        self.assertEqual(self.parse("--", "status").command, "status")

    def test_version(self):
        self.assertEqual(self.run_main(["--version"]), (0, "sliceofml %s\n" % sliceofml.__version__, ""))
        self.assertEqual(self.run_main(["slice", "--version"])[0], 2)


class LazyProgramTests(unittest.TestCase):
    """The program string is compiled only for commands, and it keeps this file's line numbers."""

    def run_file(self, *arguments):
        # Runs the file the way `python3 sliceofml.py ...` does, then reports whether the program
        # string was compiled.
        script = (
            "import sys\n"
            "path = sys.argv[1]\n"
            "sys.argv = sys.argv[1:]\n"
            "names = {'__name__': '__main__', '__file__': path}\n"
            "code = compile(open(path, encoding='utf-8').read(), path, 'exec')\n"
            "try:\n"
            "    exec(code, names)\n"
            "except SystemExit as finished:\n"
            "    sys.stderr.write('exit %s loaded %s\\n' % (finished.code, names['_program_loaded']))\n"
        )
        home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, home)
        env = _tool_environment({"SLICEOFML_API_URL": "http://127.0.0.1:9"}, home)
        completed = subprocess.run([sys.executable, "-c", script, SLICEOFML_PATH] + list(arguments), env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        return completed.stderr.splitlines()[-1]

    def test_quick_paths_skip_program(self):
        for arguments in (["--help"], ["--version"], ["slice", "--top", "0"], ["status", "--help"], []):
            with self.subTest(arguments=arguments):
                self.assertIn(self.run_file(*arguments), ("exit 0 loaded False", "exit 2 loaded False"))

    def test_commands_load_the_program(self):
        self.assertEqual(self.run_file("status"), "exit 4 loaded True")

    def test_help_imports_nothing_new(self):
        def imported(*arguments):
            completed = subprocess.run([sys.executable, "-X", "importtime"] + list(arguments),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
            return {line.split("|")[-1].strip() for line in completed.stderr.splitlines()
                    if line.startswith("import time:")}
        bare = imported("-c", "pass")
        for arguments in (["--help"], ["--version"], ["slice", "--top", "0"]):
            with self.subTest(arguments=arguments):
                self.assertEqual(imported(SLICEOFML_PATH, *arguments) - bare, set())

    def test_source_lines_match_file(self):
        with open(SLICEOFML_PATH, encoding="utf-8") as source:
            lines = source.read().split("\n")
        for function in (sliceofml.render_table, sliceofml.update_netrc, sliceofml.Context.retry_delay,
                         sliceofml.login, sliceofml.main, sliceofml._parse_arguments):
            with self.subTest(function=function.__name__):
                code = function.__code__
                self.assertEqual(code.co_filename, sliceofml.__file__)
                self.assertTrue(lines[code.co_firstlineno - 1].lstrip().startswith("def %s(" % function.__name__))

    def test_traceback_names_raising_line(self):
        try:
            sliceofml.parse_api_url("ftp://example.invalid")
        except sliceofml.UsageError:
            frame = traceback.extract_tb(sys.exc_info()[2])[-1]
        self.assertEqual(frame.name, "parse_api_url")
        self.assertTrue(frame.line.startswith("raise UsageError("), frame.line)


@unittest.skipUnless(os.name == "posix", "pseudo-terminals need POSIX")
class TerminalTests(_FakeCase):
    fake_options = {"latency": 0.03}

    def terminal_env(self, **extra):
        env = _tool_environment(self.env(**extra), self.home)
        env["TERM"] = "xterm-256color"
        return env

    def test_interactive_login(self):
        code, screen = run_on_terminal(
            ["login"], self.terminal_env(),
            answers=[("API key: ", "demo-key\r"), ("API key secret: ", "demo-secret\r"),
                     ("App name [sliceofml]: ", "pty-app\r")])
        self.assertEqual(code, 0, screen)
        self.assertIn('"Keys and tokens"', screen)
        self.assertIn("OAuth 2.0 Client ID", screen)
        self.assertIn("\x1b]8;;https://developer.x.com/en/portal/dashboard\x1b\\", screen)
        self.assertNotIn("demo-secret", screen)
        self.assertNotIn("demo-key", screen)
        self.assertIn("pty-app", screen)
        self.assertEqual(self.read_netrc(),
                         "machine sliceofml@127.0.0.1 login pty-app password %s\n" % self.fake.token)

    def test_token_never_in_debug_output(self):
        secret = "AAAAsecret%2Ftoken%3Dnever-shown-0001"
        self.write_netrc("machine sliceofml@127.0.0.1 login app password %s\n" % secret)
        for fault in (None, ("status", 401, UNAUTHORIZED_BODY)):
            if fault:
                self.fake.fail(1, fault)
            code, stdout, stderr = self.run_tool("--debug", "slice", "--weekly",
                                                 env={"SLICEOFML_BEARER_TOKEN": None})
            with self.subTest(fault=fault):
                self.assertIn("sliceofml: debug: GET http://127.0.0.1:", stderr)
                self.assertNotIn(secret, stdout + stderr)
                self.assertNotIn("never-shown", stdout + stderr)

    def test_retries_shown_on_terminal(self):
        # Port 9 on loopback refuses connections, so every attempt fails at once.
        env = self.terminal_env(SLICEOFML_API_URL="http://127.0.0.1:9", SLICEOFML_BEARER_TOKEN="made-up-token-4",
                                SLICEOFML_RETRY_DELAY="0")
        code, screen = run_on_terminal(["slice"], env)
        self.assertEqual(code, 1, screen)
        for attempt in (2, 3, 4):
            self.assertIn("retrying in 0.0 s (attempt %d of 4) after a failed request" % attempt, screen)
        self.assertIn("\r\x1b[2Ksliceofml: error: failed to connect to 127.0.0.1", screen.replace("\r\n", "\n"))

    def test_ctrl_d_at_key_prompt(self):
        code, screen = run_on_terminal(["login"], self.terminal_env(), answers=[("API key: ", "\x04")])
        self.assertEqual(code, 2, screen)
        self.assertIn("sliceofml: error: no API key entered; run `python3 sliceofml.py login` again", screen)
        self.assertNotIn("EOFError", screen)
        self.assertFalse(os.path.exists(self.netrc_path))

    def test_table_on_terminal(self):
        self.log_in()
        code, screen = run_on_terminal(["slice", "--weekly"], self.terminal_env(), columns=120)
        self.assertEqual(code, 0, screen)
        self.assertIn("weekly time window: 1 page", screen)
        self.assertIn("\r\x1b[2K", screen)
        title = screen.index("Your weekly slice of ML")
        self.assertGreater(title, screen.rindex("\r\x1b[2K"))
        self.assertIn("\x1b[1mYour weekly slice of ML\x1b[0m", screen)
        self.assertIn("\x1b[34;4mview\x1b[0m", screen)
        self.assertIn("\x1b]8;;https://x.com/", screen)
        self.assertNotIn("Traceback", screen)
        table = screen[title:]
        plain = re.sub(r"\x1b\[[0-9;]*m|\x1b\]8;;[^\x1b]*\x1b\\", "", table)
        self.assertNotIn("\x1b", plain)
        for line in plain.replace("\r\n", "\n").splitlines():
            self.assertLessEqual(sliceofml.display_width(line), 120)

    def test_no_color_on_terminal(self):
        self.log_in()
        code, screen = run_on_terminal(["slice", "--weekly"], self.terminal_env(NO_COLOR="1"))
        self.assertEqual(code, 0, screen)
        table = screen[screen.index("Your weekly slice of ML"):]
        self.assertNotIn("\x1b", table)

    def test_rate_limit_countdown(self):
        self.log_in()
        self.fake.fail(1, ("status", 429, TOO_MANY_BODY,
                           {"x-rate-limit-remaining": "0", "x-rate-limit-reset": lambda: str(int(time.time()) + 2)}))
        code, screen = run_on_terminal(["slice", "--weekly", "--workers", "1"], self.terminal_env())
        self.assertEqual(code, 0, screen)
        self.assertIn("\r\x1b[2Krate limit reached; going on in 1 s (Ctrl-C stops)", screen)


@unittest.skipUnless(os.name == "posix", "signals need POSIX")
class InterruptTests(_FakeCase):
    def interrupt(self, args, stdin_text=None, after=1.0):
        env = _tool_environment(self.env(), self.home)
        process = subprocess.Popen([sys.executable, SLICEOFML_PATH] + args, env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if stdin_text is not None:
            process.stdin.write(stdin_text.encode("utf-8"))
            process.stdin.flush()
        time.sleep(after)
        process.send_signal(2)  # SIGINT, as Ctrl-C sends
        stdout, stderr = process.communicate(timeout=30)
        return process.returncode, stdout.decode("utf-8"), stderr.decode("utf-8")

    def test_ctrl_c_while_paging(self):
        self.log_in()
        self.fake.fail(1, ("stall", 20))
        code, stdout, stderr = self.interrupt(["slice", "--weekly"])
        self.assertEqual(code, 130)
        self.assertEqual(stdout, "")
        self.assertEqual(stderr, "\nsliceofml: interrupted\n")

    def test_ctrl_c_during_rate_limit_wait(self):
        self.log_in()
        self.fake.fail(1, ("status", 429, TOO_MANY_BODY,
                           {"x-rate-limit-remaining": "0", "x-rate-limit-reset": lambda: str(int(time.time()) + 30)}))
        code, stdout, stderr = self.interrupt(["slice", "--weekly"], after=1.5)
        self.assertEqual(code, 130)
        self.assertTrue(stderr.endswith("\nsliceofml: interrupted\n"), stderr)
        self.assertNotIn("Traceback", stderr)

    def test_ctrl_c_at_login_prompt_keeps_netrc(self):
        self.write_netrc("machine git.example.org login dev password devpass\n")
        env = _tool_environment(self.env(), self.home)
        process = subprocess.Popen([sys.executable, SLICEOFML_PATH, "login", "--relogin"], env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdin.write(b"demo-key\n")
        process.stdin.flush()
        time.sleep(1.0)
        process.send_signal(2)
        stdout, stderr = process.communicate(timeout=30)
        self.assertEqual(process.returncode, 130)
        self.assertEqual(stderr, b"\nsliceofml: interrupted\n")
        self.assertEqual(self.read_netrc(), "machine git.example.org login dev password devpass\n")


class EncodingTests(_FakeCase):
    def test_ascii_stdout_gets_ascii_box(self):
        self.log_in()
        code, stdout, stderr = self.run_tool("slice", "--weekly", env={"PYTHONIOENCODING": "ascii"})
        self.assertEqual(code, 0, stderr)
        self.assertIn("+----+", stdout)
        self.assertNotIn("╭", stdout)
        stdout.encode("ascii")

    def test_cp1252_console(self):
        self.log_in()
        code, stdout, stderr = self.run_tool("slice", "--weekly", env={"PYTHONIOENCODING": "cp1252"})
        self.assertEqual(code, 0, stderr)
        self.assertIn("+----+", stdout)
        self.assertNotIn("Traceback", stderr)

    def test_ascii_json_is_escaped_not_lost(self):
        self.log_in()
        code, ascii_out, stderr = self.run_tool("slice", "--weekly", "--json", env={"PYTHONIOENCODING": "ascii"})
        self.assertEqual(code, 0, stderr)
        code, utf8_out, stderr = self.run_tool("slice", "--weekly", "--json", env={"PYTHONIOENCODING": "utf-8"})
        ascii_out.encode("ascii")
        self.assertEqual(json.loads(ascii_out)["posts"], json.loads(utf8_out)["posts"])

    def test_piped_json_has_no_styling(self):
        self.log_in()
        code, stdout, stderr = self.run_tool("slice", "--weekly", "--json", env={"FORCE_COLOR": "1"})
        self.assertEqual(code, 0, stderr)
        self.assertNotIn("\x1b", stdout)

    def test_force_color_styles_piped_table(self):
        self.log_in()
        code, stdout, stderr = self.run_tool("slice", "--weekly", env={"FORCE_COLOR": "1"})
        self.assertEqual(code, 0, stderr)
        self.assertIn("\x1b[1mYour weekly slice of ML\x1b[0m", stdout)


class PortabilityTests(_FakeCase):
    def test_runs_as_executable_from_elsewhere(self):
        with open(SLICEOFML_PATH, "rb") as stream:
            self.assertEqual(stream.readline(), b"#!/usr/bin/env python3\n")
        if os.name == "posix":
            self.assertTrue(os.access(SLICEOFML_PATH, os.X_OK))
        elsewhere = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, elsewhere)
        env = _tool_environment(self.env(), self.home)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        completed = subprocess.run([SLICEOFML_PATH, "--version"], cwd=elsewhere, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertEqual(completed.stdout, "sliceofml %s\n" % sliceofml.__version__)

    def test_writes_nothing_but_netrc(self):
        workdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, workdir)
        tool_folder_before = sorted(os.listdir(os.path.dirname(SLICEOFML_PATH)))
        runs = [(["login"], "demo-key\ndemo-secret\napp\n"), (["slice", "--weekly"], None),
                (["status"], None), (["slice", "--daily", "--json"], None), (["logout"], None)]
        for args, stdin_text in runs:
            code, stdout, stderr = run_cli(args, self.env(), stdin_text=stdin_text, home=self.home,
                                           cwd=workdir)
            self.assertEqual(code, 0, stderr)
        self.assertEqual(os.listdir(workdir), [])
        self.assertEqual(os.listdir(self.home), [".netrc"])
        self.assertEqual(sorted(os.listdir(os.path.dirname(SLICEOFML_PATH))), tool_folder_before)

    @unittest.skipUnless(shutil.which("make"), "make is not installed")
    def test_make_install(self):
        prefix = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, prefix)
        completed = subprocess.run(["make", "-s", "-C", HERE, "install", "PREFIX=" + prefix],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(completed.returncode, 0, completed.stderr)
        installed = os.path.join(prefix, "bin", "sliceofml")
        with open(installed, "rb") as copy, open(SLICEOFML_PATH, "rb") as original:
            self.assertEqual(copy.read(), original.read())
        if os.name == "posix":
            self.assertEqual(stat.S_IMODE(os.stat(installed).st_mode), 0o755)

    def test_parses_on_python_3_6(self):
        binary = find_python("3.6")
        if binary is None:
            self.skipTest("no Python 3.6 on this machine")
        completed = subprocess.run([binary, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())",
                                    SLICEOFML_PATH], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(completed.returncode, 0, completed.stderr)


# ==============================================================================================
# Hostile servers and inputs: whatever arrives, one line, a documented exit code, nothing lost
# ==============================================================================================


class RawAPI(object):
    """A loopback server whose every response is written by `respond(handler)`, byte by byte if need be."""

    def __init__(self, respond):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                try:
                    respond(self)
                except (OSError, ValueError):
                    pass  # The client hung up, which is what many of these tests provoke.

        self.requests = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


def json_responder(document, headers=None):
    """Return a responder that answers 200 with `document` (bytes, str or JSON-able object)."""
    if isinstance(document, bytes):
        body = document
    elif isinstance(document, str):
        body = document.encode("utf-8")
    else:
        body = json.dumps(document).encode("utf-8")

    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


class HostileResponseTests(unittest.TestCase):
    def run_against(self, respond, *args, **env):
        with RawAPI(respond) as api:
            values = {"SLICEOFML_API_URL": api.url, "SLICEOFML_BEARER_TOKEN": "AAAAhostile%2Ftest%3Dtoken",
                      "SLICEOFML_RETRY_DELAY": "0.01"}
            values.update(env)
            code, stdout, stderr = run_cli(["slice", "--workers", "1"] + list(args), values)
            return code, stdout, stderr, list(api.requests)

    def assert_one_line_error(self, stderr, text):
        self.assertNotIn("Traceback", stderr)
        self.assertNotIn("unexpected", stderr)
        self.assertIn("sliceofml: error: " + text, stderr)

    def test_trickled_body_times_out(self):
        def respond(handler):
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            for _ in range(100000):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.05)

        code, stdout, stderr, requests = self.run_against(respond, "--timeout", "0.5")
        self.assertEqual(code, 1, stderr)
        self.assert_one_line_error(stderr, "the request to 127.0.0.1 timed out after 0.5 s (gave up after 4 attempts)")
        self.assertEqual(len(requests), 4)

    def test_trickled_headers_time_out(self):
        def respond(handler):
            for character in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
                handler.wfile.write(bytes([character]))
                handler.wfile.flush()
                time.sleep(0.05)

        code, stdout, stderr, requests = self.run_against(respond, "--timeout", "0.5")
        self.assertEqual(code, 1, stderr)
        self.assert_one_line_error(stderr, "the request to 127.0.0.1 timed out after 0.5 s (gave up after 4 attempts)")

    def test_gzip_bomb_rejected(self):
        bomb = gzip.compress(b"\0" * (sliceofml.MAX_BODY_BYTES + 1024 * 1024), 9)
        code, stdout, stderr, requests = self.run_against(json_responder(bomb, {"Content-Encoding": "gzip"}))
        self.assertEqual(code, 1, stderr)
        self.assert_one_line_error(stderr, "the response from 127.0.0.1 is larger than 32 MiB, which no search page is")
        self.assertEqual(len(requests), 1)

    def test_deeply_nested_json(self):
        code, stdout, stderr, requests = self.run_against(json_responder(b"[" * 100000))
        self.assertEqual(code, 1, stderr)
        self.assert_one_line_error(stderr, "the API returned HTTP 200 with a body that is not a JSON object")

    def test_odd_ids_skipped(self):
        document = {"data": [
            {"id": "123", "text": "kept", "public_metrics": {"like_count": 9}},
            {"id": "\u0661\u0662\u0663", "text": "Arabic-Indic digits", "public_metrics": {"like_count": 99}},
            {"id": "\u00b2", "text": "superscript two"},
            {"id": "9" * 5000, "text": "too many digits"},
            {"id": {"x": 1}, "text": "an object"},
            {"id": True, "text": "a boolean"},
        ]}
        code, stdout, stderr, requests = self.run_against(json_responder(document), "--json")
        self.assertEqual(code, 0, stderr)
        result = json.loads(stdout)
        self.assertEqual(result["posts_read"], 1)
        self.assertEqual([post["id"] for post in result["posts"]], ["123"])
        self.assertEqual(result["posts"][0]["like_count"], 9)

    def test_absurd_metrics_count_as_zero(self):
        document = {"data": [
            {"id": "1", "text": "huge", "public_metrics": {"like_count": 10 ** 200}},
            {"id": "2", "text": "float", "public_metrics": {"like_count": 12.0}},
            {"id": "3", "text": "negative", "public_metrics": {"like_count": -5}},
            {"id": "4", "text": "text", "public_metrics": {"like_count": "NaN"}},
        ]}
        code, stdout, stderr, requests = self.run_against(json_responder(document), "--json")
        self.assertEqual(code, 0, stderr)
        likes = {post["id"]: post["like_count"] for post in json.loads(stdout)["posts"]}
        self.assertEqual(likes, {"1": 0, "2": 12, "3": 0, "4": 0})

    def test_lone_surrogates_replaced(self):
        body = b'{"data": [{"id": "1", "author_id": "7", "text": "bad \\ud800 half"}],' \
               b' "includes": {"users": [{"id": "7", "username": "x\\udfff"}]}}'
        for extra in (["--json"], []):
            with self.subTest(extra=extra):
                code, stdout, stderr, requests = self.run_against(json_responder(body), *extra)
                self.assertEqual(code, 0, stderr)
                self.assertIn("bad \ufffd half", stdout if not extra else json.loads(stdout)["posts"][0]["text"])

    def test_data_not_a_list(self):
        code, stdout, stderr, requests = self.run_against(json_responder({"data": "string"}))
        self.assertEqual(code, 1, stderr)
        self.assert_one_line_error(stderr, "the API returned a search page whose data is a str, not a list of posts")

    def test_repeated_next_token_stops(self):
        document = {"data": [{"id": "1", "text": "again"}], "meta": {"next_token": "same-token"}}
        code, stdout, stderr, requests = self.run_against(json_responder(document), "--json", "--max-pages", "50")
        self.assertEqual(code, 1, stderr)
        self.assertEqual(len(requests), 2)
        result = json.loads(stdout)
        self.assertFalse(result["complete"])
        self.assertIn("next_token it had sent before", result["stop_reason"])

    def test_token_with_line_break_not_echoed(self):
        token = "AAAAsecret-not-for-output\n# saved 2026"
        code, stdout, stderr, requests = self.run_against(json_responder({}), SLICEOFML_BEARER_TOKEN=token)
        self.assertEqual(code, 2, stderr)
        self.assertEqual(stderr, "sliceofml: error: SLICEOFML_BEARER_TOKEN contains a space, a line break or "
                                 "a character outside printable ASCII; set it to the bearer token alone\n")
        self.assertEqual(requests, [])

    def test_redirect_loop_message(self):
        def respond(handler):
            handler.send_response(302)
            handler.send_header("Location", handler.path)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        code, stdout, stderr, requests = self.run_against(respond)
        self.assertEqual(code, 1, stderr)
        self.assertEqual(stderr, "sliceofml: error: the API returned HTTP 302, a redirect that did not lead "
                                 "to a response (a loop, or no Location)\n")

    def test_absurd_rate_limit_reset(self):
        def respond(handler):
            body = json.dumps(TOO_MANY_BODY).encode("utf-8")
            handler.send_response(429)
            handler.send_header("x-rate-limit-remaining", "0")
            handler.send_header("x-rate-limit-reset", "99999999999999999999999")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        code, stdout, stderr, requests = self.run_against(respond)
        self.assertEqual(code, 1, stderr)
        self.assertEqual(stderr, "sliceofml: error: the rate limit is reached (HTTP 429); it resets in more "
                                 "than a day, which is longer than --max-wait 90 s; try again later\n")

    def test_huge_columns_capped(self):
        document = {"data": [{"id": "1", "text": "x"}]}
        code, stdout, stderr, requests = self.run_against(json_responder(document), COLUMNS="99999999999999999999")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(max(sliceofml.display_width(line) for line in stdout.splitlines()), sliceofml.MAX_WIDTH)


class HostileInputTests(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="sliceofml-hostile-")
        self.addCleanup(shutil.rmtree, self.home, True)
        self.netrc_path = os.path.join(self.home, ".netrc")

    def tool(self, args, stdin_text=None, **env):
        values = {"SLICEOFML_API_URL": "http://127.0.0.1:9"}
        values.update(env)
        return run_cli(args, values, stdin_text=stdin_text, home=self.home)

    def test_netrc_password_unusable_as_token(self):
        with open(self.netrc_path, "w") as stream:
            stream.write('machine sliceofml@127.0.0.1 login app password "secret part\\nX-Evil: 1"\n')
        os.chmod(self.netrc_path, 0o600)
        code, stdout, stderr = self.tool(["slice"])
        self.assertEqual(code, 1, stderr)
        self.assertNotIn("secret part", stdout + stderr)
        self.assertNotIn("Traceback", stderr)

    def write_netrc(self, text):
        with open(self.netrc_path, "w", newline="") as stream:
            stream.write(text)
        os.chmod(self.netrc_path, 0o600)

    def test_version_ambiguous_file_left_alone(self):
        texts = [
            "machine other.com login bob password bobpw #trailing machine sliceofml@127.0.0.1 login app password OLD\n",
            'machine "sliceofml@127.0.0.1" login app password OLD\n',
            "machine sliceofml@127.0.0.1 login app password OLD #tail machine other.com login u password p\n",
        ]
        for text in texts:
            for args, stdin_text in ((["logout"], None), (["login", "--with-token"], "NEWTOKEN_abcd\n")):
                with self.subTest(text=text, args=args):
                    self.write_netrc(text)
                    code, stdout, stderr = self.tool(args, stdin_text=stdin_text)
                    self.assertEqual(code, 1, stderr)
                    self.assertIn("Python 3.8 to 3.10 and Python 3.11 and newer read this line differently", stderr)
                    self.assertIn("%s, line 1:" % self.netrc_path, stderr)
                    with open(self.netrc_path, newline="") as stream:
                        self.assertEqual(stream.read(), text)

    def test_huge_word_in_netrc(self):
        self.write_netrc("machine other.com login bob password " + "x" * 100000 + "\n")
        code, stdout, stderr = self.tool(["status"])
        self.assertEqual(code, 1, stderr)
        self.assertEqual(stderr, "sliceofml: error: %s: contains a word of 100000 bytes, longer than any "
                                 "credential; remove it\n" % self.netrc_path)

    def test_status_cuts_long_app_name(self):
        self.write_netrc("machine sliceofml@127.0.0.1 login %s password AAAAtoken0123456789\n" % ("a" * 5000))
        code, stdout, stderr = self.tool(["status"])
        self.assertEqual(code, 0, stderr)
        self.assertIn("App name:     %s\u2026\n" % ("a" * 99), stdout)

    @unittest.skipUnless(hasattr(os, "mkfifo"), "FIFOs need POSIX")
    def test_fifo_netrc_rejected(self):
        os.mkfifo(self.netrc_path)
        code, stdout, stderr = self.tool(["status"])
        self.assertEqual(code, 1, stderr)
        self.assertEqual(stderr, "sliceofml: error: %s: is not a regular file; point NETRC at a netrc file\n"
                         % self.netrc_path)

    @unittest.skipUnless(os.name == "posix", "symbolic links need POSIX here")
    def test_symlink_loop_logout(self):
        os.symlink(self.netrc_path, self.netrc_path)
        code, stdout, stderr = self.tool(["logout"])
        self.assertEqual(code, 1, stderr)
        self.assertIn("cannot read the file (Too many levels of symbolic links)", stderr)

    def test_api_url_with_space_or_unicode(self):
        for url in ("http://127.0.0.1 :9", "http://127.0.0.1:9/\u00e9", "http://127.0.0.1:9/a b"):
            with self.subTest(url=url):
                code, stdout, stderr = self.tool(["status"], SLICEOFML_API_URL=url)
                self.assertEqual(code, 2, stderr)
                self.assertIn("contains a space or a character outside printable ASCII", stderr)

    def test_closed_stdin_for_login(self):
        completed = subprocess.run([sys.executable, SLICEOFML_PATH, "login"], stdin=subprocess.DEVNULL,
                                   env=_tool_environment({"SLICEOFML_API_URL": "http://127.0.0.1:9"}, self.home),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(completed.returncode, 2)
        self.assertIn("login reads three lines from standard input", completed.stderr)

    @unittest.skipUnless(os.path.exists("/dev/full"), "needs /dev/full")
    def test_full_stdout(self):
        env = _tool_environment({"SLICEOFML_API_URL": "http://127.0.0.1:9",
                                 "SLICEOFML_BEARER_TOKEN": "AAAA0123456789abcdef"}, self.home)
        with open("/dev/full", "w") as full:
            completed = subprocess.run([sys.executable, SLICEOFML_PATH, "status"], stdout=full,
                                       stderr=subprocess.PIPE, env=env, universal_newlines=True)
        self.assertEqual(completed.returncode, 1)
        self.assertEqual(completed.stderr, "sliceofml: error: cannot write to standard output "
                                           "(No space left on device)\n")

    @unittest.skipUnless(os.name == "posix", "closing a descriptor this way needs POSIX")
    def test_closed_stdout(self):
        env = _tool_environment({"SLICEOFML_API_URL": "http://127.0.0.1:9"}, self.home)
        completed = subprocess.run("exec %s %s status >&-" % (sys.executable, SLICEOFML_PATH), shell=True,
                                   stderr=subprocess.PIPE, env=env, universal_newlines=True)
        self.assertEqual(completed.returncode, 1)
        self.assertEqual(completed.stderr, "sliceofml: error: standard output is closed, so there is "
                                           "nowhere to print the result\n")


# ==============================================================================================
# Benchmark: `python3 test_sliceofml.py bench` (make bench) prints figures; no test asserts a time.
# ==============================================================================================


def _bench_startup(runs, python=None):
    """Median start-up times of `python3 -c pass` and three quick sliceofml runs.

    The commands take turns within each round, so a machine that slows down or speeds up during
    the benchmark affects all of them alike.
    """
    python = python or sys.executable
    commands = [[python, "-c", "pass"]]
    for arguments in (["--help"], ["--version"], ["slice", "--top", "0"]):
        commands.append([python, SLICEOFML_PATH] + arguments)
    times = [[] for _ in commands]
    for _ in range(runs):
        for command, measured in zip(commands, times):
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            measured.append(time.perf_counter() - started)
    medians = [sorted(measured)[len(measured) // 2] for measured in times]
    bare = medians[0]
    rows = [(" ".join(command[2:]), seconds, seconds / bare) for command, seconds in zip(commands[1:], medians[1:])]
    return bare, rows


def _bench_fetch(posts, latency):
    """Time a weekly slice with one sequential search and with the default workers."""
    home = tempfile.mkdtemp(prefix="sliceofml-bench-")
    try:
        with FakeXAPI(posts=posts, latency=latency) as fake:
            env = _tool_environment({"SLICEOFML_API_URL": fake.url, "SLICEOFML_BEARER_TOKEN": fake.token}, home)
            figures = {}
            for label, workers in (("sequential", "1"), ("concurrent", str(sliceofml.DEFAULT_WORKERS))):
                fake.reset()
                started = time.perf_counter()
                completed = subprocess.run(
                    [sys.executable, SLICEOFML_PATH, "slice", "--weekly", "--json", "--max-pages", "1000",
                     "--workers", workers], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                seconds = time.perf_counter() - started
                if completed.returncode != 0:
                    raise RuntimeError("slice failed: %s" % completed.stderr.decode("utf-8", "replace"))
                document = json.loads(completed.stdout.decode("utf-8"))
                figures[label] = (seconds, document, len(fake.search_requests()))
            return figures
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _synthetic_pages(count, page_size=100):
    """Yield search pages as JSON bytes, one at a time, so the input never sits in memory whole."""
    rng = random.Random(7)
    for first in range(0, count, page_size):
        data = []
        for number in range(first, min(first + page_size, count)):
            data.append({
                "id": str(1862000000000000000 + number), "author_id": str(number % 500),
                "created_at": "2026-11-30T08:%02d:%02d.000Z" % (number // 60 % 60, number % 60),
                "text": "Post %d about gradient descent &amp; attention 🚀 机器学习 %s" % (number, "x" * rng.randrange(200)),
                "public_metrics": {"like_count": rng.randrange(100000), "retweet_count": rng.randrange(5000),
                                   "reply_count": 1, "quote_count": 0},
            })
        authors = sorted({post["author_id"] for post in data})
        users = [{"id": author, "username": "user" + author, "name": "User"} for author in authors]
        yield json.dumps({"data": data, "includes": {"users": users},
                          "meta": {"result_count": len(data)}}).encode("utf-8")


def _process(bodies):
    top = sliceofml.TopPosts(10)
    pages = 0
    for body in bodies:
        sliceofml.read_page(json.loads(body.decode("utf-8")), top)
        pages += 1
    window = sliceofml.TimeWindow("weekly", 1796212800, 1796817570)
    result = sliceofml.SliceResult(window, top.ranked(), pages, len(top.seen))
    sliceofml.render_table(result, sliceofml.Style(), 120)


def _bench_processing(count):
    """Return (posts per second, peak bytes) to parse, rank and render `count` posts.

    Speed is timed on pages prepared beforehand; memory is traced in a second pass that makes
    each page just before it is read, so that only what the tool keeps counts.
    """
    import tracemalloc

    bodies = list(_synthetic_pages(count))
    started = time.perf_counter()
    _process(bodies)
    seconds = time.perf_counter() - started
    del bodies
    tracemalloc.start()
    _process(_synthetic_pages(count))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return count / seconds, peak


def bench(argv=None):
    """Print start-up, fetch and processing figures measured in this run. Return 0."""
    print("sliceofml %s benchmark on Python %s, %s, %d CPUs"
          % (sliceofml.__version__, platform.python_version(), platform.machine(), os.cpu_count() or 0))
    print()
    bare, rows = _bench_startup(21)
    print("Start-up, median of 21 runs (bare `python3 -c pass`: %.1f ms; target: at most 1.5x)" % (bare * 1000))
    for arguments, seconds, ratio in rows:
        print("  %-22s %6.1f ms  %.2fx bare" % (arguments, seconds * 1000, ratio))
    others = sorted(find_pythons(range(8, 14)).values(), key=lambda found: found[1])
    if others:
        print("  on each CPython found, highest of the three ratios (bare start in brackets):")
    for binary, version in others:
        bare, rows = _bench_startup(21, binary)
        print("    %-8s %.2fx  (%.1f ms)" % ("%d.%d.%d" % version, max(row[2] for row in rows), bare * 1000))
    print()

    latency = 0.1
    figures = _bench_fetch(7400, latency)
    sequential, concurrent = figures["sequential"], figures["concurrent"]
    same = [post["id"] for post in sequential[1]["posts"]] == [post["id"] for post in concurrent[1]["posts"]]
    print("Weekly slice against the fake X API, %d ms per page" % (latency * 1000))
    for label, (seconds, document, requests) in sorted(figures.items(), reverse=True):
        print("  %-11s %6.2f s  %d pages, %d requests, %d posts read"
              % (label, seconds, document["pages"], requests, document["posts_read"]))
    print("  concurrent / sequential: %.2f, target at most 0.3 (same top 10: %s)" % (concurrent[0] / sequential[0], "yes" if same else "NO"))
    print("  (the runs start seconds apart, so the posts at the edges of their time windows differ)")
    print()

    print("Parse, rank and render (one process, pages decoded one at a time)")
    for count in (10000, 50000):
        rate, peak = _bench_processing(count)
        print("  %6d posts  %8.0f posts/s  peak memory %.1f MiB" % (count, rate, peak / 1048576.0))
    return 0

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
    print("Running the suite on Python %s, two at a time; each takes a minute or two."
          % ", ".join(".".join(map(str, found[key][1])) for key in sorted(found)))
    sys.stdout.flush()
    results = {}

    def run(key):
        binary, version = found[key]
        started = time.monotonic()
        completed = subprocess.run([binary, os.path.join(HERE, "test_sliceofml.py")],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   universal_newlines=True, cwd=HERE)
        results[key] = (completed, time.monotonic() - started)

    keys = sorted(found)
    totals = {"passed": 0, "failed": 0, "skipped": 0}

    def report(key):
        completed, seconds = results[key]
        passed, failed, skipped = _unittest_counts(completed.stdout)
        if completed.returncode != 0 and failed == 0:
            failed = 1
        totals["passed"] += passed
        totals["failed"] += failed
        totals["skipped"] += skipped
        verdict = "ok" if completed.returncode == 0 else "FAILED"
        print("Python %s: %d passed, %d failed, %d skipped in %.1f s (%s)"
              % (".".join(map(str, found[key][1])), passed, failed, skipped, seconds, verdict))
        if completed.returncode != 0:
            print(completed.stdout[-6000:])
        sys.stdout.flush()

    # Two suites at a time on a two-core machine keeps timing-sensitive tests honest.
    pending = list(keys)
    while pending:
        batch, pending = pending[:2], pending[2:]
        threads = [threading.Thread(target=run, args=(key,)) for key in batch]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for key in batch:
            report(key)

    total_passed, total_failed, total_skipped = totals["passed"], totals["failed"], totals["skipped"]
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
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve(sys.argv[2:]))
    unittest.main()
