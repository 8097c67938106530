#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""sliceofml: the most-liked machine-learning posts on X of the last day or week.

Usage:
    python3 sliceofml.py login  [--relogin] [--with-token] [--app-name NAME]
    python3 sliceofml.py slice  [--daily | --weekly] [--top N] [--max-pages N] [--json] ...
    python3 sliceofml.py status
    python3 sliceofml.py logout

One file, standard library only, CPython 3.8 or newer: copy it anywhere and run it.
`login` trades the X app's API key and secret for an app-only bearer token and keeps it in the
netrc file. `slice` pages through recent search for the "Machine learning" context annotation,
ranks the posts by likes and prints the top 10 as a table.

The file reads top to bottom: constants, errors, then the program (its own constants and errors,
data, netrc store, HTTP client, search and ranking, terminal rendering, commands), then the
argument parser and main. The program is kept in one string, compiled only when a command runs;
the comment where it starts explains why.
"""

import sys

# This check comes before anything else so that Python 2.7, 3.6 and 3.7 print one line instead of a
# traceback. The code outside the program string below must therefore still parse on those versions:
# no walrus, no "/" parameters, no f-strings. The string itself is compiled only after this check.
if sys.version_info < (3, 8):
    sys.stderr.write(
        "sliceofml needs Python 3.8 or newer (this is %d.%d)\n" % sys.version_info[:2]
    )
    sys.exit(1)

import os
import time

# Heavy modules (urllib.request, ssl, json, netrc, threading, unicodedata, ...) are imported inside the
# functions that use them, so that `--help`, `--version` and usage errors import nothing more.

__version__ = "1.0.0"
__all__ = [
    "__version__",
    "main",
    "login",
    "slice_posts",
    "status",
    "logout",
    "SliceError",
    "UsageError",
    "NetrcError",
    "AuthError",
    "APIError",
    "NetworkError",
    "PagingStopped",
]


# ==============================================================================================
# Constants
# ==============================================================================================

# What the command line needs: defaults, limits, exit codes and the environment it reads. The
# constants that only the program uses open the program string below.

DEFAULT_APP_NAME = "sliceofml"

DEFAULT_TOP = 10
DEFAULT_MAX_PAGES = 100
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_WAIT = 90.0
DEFAULT_WORKERS = 7
MAX_WORKERS = 16

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_AUTH = 4
EXIT_INTERRUPTED = 130

# Every environment variable the tool reads, in one place. `--debug` logs the ones that are set,
# and --help describes each.
ENVIRONMENT = (
    "SLICEOFML_API_URL",
    "SLICEOFML_BEARER_TOKEN",
    "SLICEOFML_RETRY_DELAY",
    "NETRC",
    "NO_COLOR",
    "FORCE_COLOR",
    "COLUMNS",
    "TERM",
)


# ==============================================================================================
# Errors
# ==============================================================================================

# The base error and the one the command line raises. The program string below opens with the
# errors of the netrc store, the HTTP client and paging.

class SliceError(Exception):
    """Base of every error that main() reports as one line and an exit code."""

    exit_code = EXIT_FAILURE


class UsageError(SliceError):
    """The command line or a value the user typed is invalid."""

    exit_code = EXIT_USAGE


def _one_line(text, limit=400):
    """Collapse whitespace and control characters so an API message cannot break our output."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


# ==============================================================================================
# The program: data, netrc store, HTTP client, search and ranking, terminal rendering, commands
# ==============================================================================================

# Why the next sections are one string: CPython compiles a script from source on every run, because
# it caches bytecode only for imported modules. Compiling these 2,700 lines took 16 to 32 ms on our
# 2-core test machine, longer than Python's own start. Kept as text, they cost nothing to `--help`,
# `--version` and usage errors, which the argument parser and main() below handle on their own.
# main() compiles the text when a command runs, and importing this file compiles it at once. Both
# use this file's name and line numbers, so tracebacks, --debug, doctests and inspect point at the
# lines here. Read and edit them as ordinary code. The string ends at the next three single quotes,
# so the code inside must not contain three in a row. _PROGRAM_FIRST_LINE is the line of this file
# where the string starts, which keeps line numbers right however the lines around it change.
_PROGRAM_FIRST_LINE, _PROGRAM = sys._getframe().f_lineno, r'''
# ==============================================================================================
# Constants of the program
# ==============================================================================================

DEFAULT_API_URL = "https://api.x.com"
TOKEN_PATH = "/oauth2/token"
SEARCH_PATH = "/2/tweets/search/recent"

# Entity 898661583827615744 of domain 66 ("Interests and Hobbies Category") is "Machine learning".
SEARCH_QUERY = "context:66.898661583827615744 -is:retweet"
SEARCH_FIELDS = {
    "tweet.fields": "public_metrics,created_at,note_tweet",
    "expansions": "author_id",
    "max_results": "100",
}

NETRC_MACHINE_PREFIX = "sliceofml@"
# The original 2022 sliceofml stored its token under this machine name.
LEGACY_MACHINE = "api.twitter.com"

DEFAULT_RETRY_DELAY = 1.0
ATTEMPTS_PER_PAGE = 4
MAX_RATE_LIMIT_WAITS = 5

# The API rejects an end_time later than about 10 seconds before the request arrives.
END_TIME_MARGIN = 30
# The API rejects a start_time older than 7 days at the moment each request arrives, so the weekly
# window starts this much later, which keeps it valid through minutes of paging.
WEEKLY_START_MARGIN = 120
# Added to the earliest start_time that a 400 response names before the one retry with it. The
# response names that time to the minute only, so the real limit can be up to 60 s later. The rest
# keeps the corrected start valid through minutes of paging, as WEEKLY_START_MARGIN does.
START_TIME_CORRECTION = 60 + WEEKLY_START_MARGIN
DAY = 24 * 3600
WINDOW_SECONDS = {"daily": DAY, "weekly": 7 * DAY}
# With more than one worker, a window is searched as this many adjacent sub-windows.
WINDOW_SPLITS = {"daily": 4, "weekly": 7}
# Seconds that requests still running get to finish after an error has ended the paging.
STOP_GRACE = 2.0
# Fewer requests left than this in the rate-limit window: one request at a time.
LOW_REMAINING = 20
# A search page of 100 posts is well under 1 MiB; anything far larger is not a page.
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_NETRC_BYTES = 10 * 1024 * 1024
MAX_NETRC_TOKEN = 64 * 1024
# Post ids are decimal snowflakes of about 19 digits.
MAX_ID_DIGITS = 25
# Larger metrics are not real counts, and their digits would break the table.
MAX_METRIC = 10 ** 12
# Wider than this, a table is no longer readable; COLUMNS beyond it is taken as this.
MAX_WIDTH = 1000


# ==============================================================================================
# Errors of the program
# ==============================================================================================


class NetrcError(SliceError):
    """The netrc file cannot be read, parsed or written."""

    def __init__(self, message, filename=None, lineno=None, reason=None):
        self.filename = filename
        self.lineno = lineno
        # The cause in a few words, without file, line or advice, for messages that quote it.
        self.reason = reason or message
        where = ""
        if filename is not None:
            where = str(filename)
            if lineno:
                where += ", line %d" % lineno
            where += ": "
        super().__init__(where + message)


class AuthError(SliceError):
    """No bearer token is available, or the API rejected the credentials."""

    exit_code = EXIT_AUTH


class APIError(SliceError):
    """An error response from the API, with its HTTP status and the API's own words."""

    def __init__(self, message, status=None, retryable=False, wait_seconds=None, server_time=None):
        self.status = status
        # The server's clock (Unix seconds) from the response's Date header, when it had one.
        self.server_time = server_time
        # Set for errors worth another attempt (5xx, a short per-second rate limit).
        self.retryable = retryable
        # Set for a rate limit that ends at a known time.
        self.wait_seconds = wait_seconds
        super().__init__(message)


class NetworkError(SliceError):
    """A request failed in transport: refused, reset, timed out, truncated or unreadable."""

    retryable = True


class PagingStopped(SliceError):
    """Paging ended early; the posts already read are ranked and shown all the same."""


# ==============================================================================================
# Data: posts and time windows
# ==============================================================================================


class Post(object):
    """One post as the table and the JSON document show it."""

    __slots__ = ("id", "username", "text", "like_count", "retweet_count", "created_at")

    def __init__(self, id, username, text, like_count, retweet_count, created_at):
        self.id = id
        self.username = username
        self.text = text
        self.like_count = like_count
        self.retweet_count = retweet_count
        self.created_at = created_at

    def rank_key(self):
        """Return the sort key: likes, then retweets, then newest (created_at, then id)."""
        return (self.like_count, self.retweet_count, self.created_at, _id_number(self.id))


def _id_number(post_id):
    return int(post_id) if post_id.isascii() and post_id.isdigit() else -1


class TimeWindow(object):
    """A span of time searched as one sequence of pages: start inclusive, end exclusive (Unix s)."""

    __slots__ = ("name", "start", "end")

    def __init__(self, name, start, end):
        self.name = name
        self.start = int(start)
        self.end = int(end)

    def split(self, parts):
        """Return `parts` adjacent sub-windows that together cover this window, newest first."""
        bounds = [self.start + (self.end - self.start) * i // parts for i in range(parts + 1)]
        pieces = [TimeWindow(self.name, bounds[i], bounds[i + 1]) for i in range(parts)]
        return [piece for piece in reversed(pieces) if piece.end > piece.start]


def make_time_window(name, now):
    """Return the daily or weekly window that ends shortly before `now` (Unix seconds)."""
    now = int(now)
    end = now - END_TIME_MARGIN
    if name == "weekly":
        start = now - WINDOW_SECONDS["weekly"] + WEEKLY_START_MARGIN
    else:
        start = end - WINDOW_SECONDS["daily"]
    return TimeWindow(name, start, end)


def format_rfc3339(seconds):
    """Format Unix seconds as the API's `YYYY-MM-DDTHH:MM:SSZ` (UTC, no fraction)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def parse_rfc3339(text):
    """Parse `YYYY-MM-DDTHH:MM[:SS[.fff]]Z` to Unix seconds, or return None when it is not one."""
    import calendar
    import re

    match = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?Z$", text or "")
    if not match:
        return None
    fields = [int(group or 0) for group in match.groups()]
    try:
        return calendar.timegm(tuple(fields) + (0, 0, 0))
    except (ValueError, OverflowError):
        return None


# ==============================================================================================
# Netrc store
#
# The bearer token lives in the user's netrc file beside credentials for other hosts, so the writer
# edits our entry in place and leaves every other byte as it was. Reading goes through the standard
# library's `netrc` module, the reader that other Python tools use, and every file we write is parsed
# back with it before it replaces the old one.
# ==============================================================================================

_NETRC_WHITESPACE = " \t\r\n"
_NETRC_KEYWORDS = ("machine", "default", "macdef")


def netrc_machine(api_host):
    """Return our netrc machine name for an API host, e.g. `sliceofml@api.x.com`."""
    return NETRC_MACHINE_PREFIX + api_host


def _home_directory(environ, os_name):
    if os_name == "nt":
        home = environ.get("USERPROFILE") or (
            environ.get("HOMEDRIVE", "") + environ.get("HOMEPATH", "")
        )
        if home:
            return home
    home = environ.get("HOME")
    if home:
        return home
    return os.path.expanduser("~")


def default_netrc_path(environ, os_name=None):
    """Return the netrc path: `NETRC`, else `~/.netrc`, else on Windows an existing `~/_netrc`."""
    os_name = os_name or os.name
    if environ.get("NETRC"):
        return os.path.expanduser(environ["NETRC"])
    home = _home_directory(environ, os_name)
    dotted = os.path.join(home, ".netrc")
    underscored = os.path.join(home, "_netrc")
    if os_name == "nt" and not os.path.exists(dotted) and os.path.exists(underscored):
        return underscored
    return dotted


def _line_of_offset(data, offset):
    return data.count(b"\n", 0, offset) + 1


def _read_netrc_text(path):
    """Return the file's text, or None when it does not exist. Raise NetrcError when unreadable."""
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise NetrcError("cannot read the file (%s)" % (error.strerror or error), path)
    if stat.S_ISDIR(info.st_mode):
        raise NetrcError("is a directory, not a netrc file", path)
    if not stat.S_ISREG(info.st_mode):
        # Reading a FIFO or a device could block or never end.
        raise NetrcError("is not a regular file; point NETRC at a netrc file", path)
    if info.st_size > MAX_NETRC_BYTES:
        raise NetrcError("is larger than %d MiB, which no netrc file is" % (MAX_NETRC_BYTES // 1048576), path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_NETRC_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise NetrcError("cannot read the file (%s)" % (error.strerror or error), path)
    longest = max((len(word) for word in data.split()), default=0)
    if longest > MAX_NETRC_TOKEN:
        # Python 3.8 to 3.10 take time quadratic in a token's length: a megabyte takes half a minute.
        raise NetrcError("contains a word of %d bytes, longer than any credential; remove it" % longest,
                         path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NetrcError(
            "invalid UTF-8 byte 0x%02x; fix or remove that line" % data[error.start],
            path,
            _line_of_offset(data, error.start),
        )


def _parse_netrc(path):
    """Parse the file with the standard library's reader, as every Python tool on this machine does."""
    import netrc

    try:
        return netrc.netrc(path)
    except netrc.NetrcParseError as error:
        # NOTE: the line is the one Python's netrc module names. At the end of a file it counts the
        # line after the final newline, one past the last line, and other tools quote it the same.
        raise NetrcError(
            "cannot parse the netrc file (%s); fix that line, then try again" % error.msg,
            path,
            error.lineno,
            error.msg,
        )
    except UnicodeDecodeError as error:
        raise NetrcError("the file is not valid UTF-8 text (%s)" % error.reason, path)
    except OSError as error:
        raise NetrcError("cannot read the file (%s)" % (error.strerror or error), path)


def load_netrc(path):
    """Return the parsed netrc file at `path`, or None when there is none."""
    if _read_netrc_text(path) is None:
        return None
    return _parse_netrc(path)


class _NetrcEntry(object):
    """The position of one top-level item (machine, default or macdef) in the file text."""

    __slots__ = ("kind", "name", "start", "end", "open_macro")

    def __init__(self, kind, name, start, end, open_macro=False):
        self.kind = kind
        self.name = name
        self.start = start
        self.end = end
        # A macro body that runs to the end of the file without its closing empty line.
        self.open_macro = open_macro


class _NetrcScanner(object):
    """A lexer over netrc text that keeps the offset of every token.

    It follows the grammar of the standard library reader closely enough to find where entries
    start and end. Quotes, backslashes and `#` comments follow Python 3.8 to 3.10 or 3.11 and newer,
    macro bodies end at an empty line, and lines end with CR, LF or CRLF. It never decides what the
    file means: the standard library reader does, before and after every edit.
    """

    def __init__(self, text, new_lexer=True):
        self.text = text
        self.position = 0
        # Python 3.8 to 3.10 split on whitespace only: quotes and backslashes are ordinary.
        self.new_lexer = new_lexer

    def next_token(self):
        """Return (value, start, end) of the next token, or None at the end of the text."""
        text = self.text
        length = len(text)
        index = self.position
        while index < length and text[index] in _NETRC_WHITESPACE:
            index += 1
        if index >= length:
            self.position = index
            return None

        start = index
        if not self.new_lexer:
            while index < length and text[index] not in _NETRC_WHITESPACE:
                index += 1
            self.position = index
            return text[start:index], start, index

        characters = []
        if text[index] == '"':
            index += 1
            while index < length and text[index] != '"':
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                characters.append(text[index])
                index += 1
            index = min(index + 1, length)
        else:
            while index < length and text[index] not in _NETRC_WHITESPACE:
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                characters.append(text[index])
                index += 1
        self.position = index
        return "".join(characters), start, index

    def line_end(self, position):
        """Return the offset just past the line end at or after `position`, as universal newlines see it."""
        text = self.text
        carriage = text.find("\r", position)
        newline = text.find("\n", position)
        if carriage < 0 and newline < 0:
            return len(text)
        if newline < 0 or 0 <= carriage < newline:
            return carriage + (2 if text.startswith("\r\n", carriage) else 1)
        return newline + 1

    def skip_line(self):
        self.position = self.line_end(self.position)

    def skip_macro_body(self):
        """Skip a macro body; return True when it ends at the end of the text without an empty line."""
        text = self.text
        # The reader consumes the one whitespace character that ends the macro name, then reads lines.
        if text.startswith("\r\n", self.position):
            self.position += 2
        elif self.position < len(text):
            self.position += 1
        while self.position < len(text):
            end = self.line_end(self.position)
            line = text[self.position:end]
            self.position = end
            if line in ("\n", "\r\n", "\r"):
                return False
        return True


def _scan_netrc(text, new_lexer=None):
    """Return the _NetrcEntry items of the text in file order.

    `new_lexer` selects the comment rules of Python 3.11 and newer (default: the running Python's).
    At the top level both skip the rest of the line after a lone `#` but only the token itself
    for `#word`. Inside an entry the new lexer skips the rest of the line after any `#` token,
    while the old one ends the entry there and applies the top-level rule.
    """
    if new_lexer is None:
        new_lexer = sys.version_info >= (3, 11)
    scanner = _NetrcScanner(text, new_lexer)
    entries = []
    while True:
        token = scanner.next_token()
        if token is None:
            break
        value, start, end = token
        if value == "#":
            scanner.skip_line()
            continue
        if value.startswith("#"):
            continue
        if value == "macdef":
            name = scanner.next_token()
            if name is not None:
                scanner.position = name[2]
            open_macro = scanner.skip_macro_body()
            entries.append(_NetrcEntry("macdef", name and name[0], start, scanner.position, open_macro))
            continue
        if value not in ("machine", "default"):
            # Not valid netrc. The standard library reader has already rejected such a file.
            continue
        name = None
        if value == "machine":
            name_token = scanner.next_token()
            if name_token is not None:
                name, end = name_token[0], name_token[2]
        entry = _NetrcEntry(value, name, start, end)
        while True:
            before = scanner.position
            token = scanner.next_token()
            if token is None:
                break
            follower, follower_start, follower_end = token
            if follower.startswith("#") and new_lexer:
                scanner.skip_line()
                continue
            if follower in _NETRC_KEYWORDS or follower.startswith("#"):
                scanner.position = before
                break
            entry.end = follower_end
            if follower in ("login", "user", "account", "password"):
                argument = scanner.next_token()
                if argument is not None:
                    entry.end = argument[2]
        entries.append(entry)
    return entries


def _entry_span(text, entry):
    """Return the span to delete for an entry: whole lines when it has its lines to itself."""
    start, end = entry.start, entry.end
    line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
    at_line_start = text[line_start:start].strip(" \t") == ""
    after = end
    while after < len(text) and text[after] in " \t":
        after += 1
    if at_line_start:
        if text.startswith("\r\n", after):
            return line_start, after + 2
        if text.startswith(("\n", "\r"), after) or after == len(text):
            return line_start, after + (1 if after < len(text) else 0)
        return start, after
    before = start
    while before > line_start and text[before - 1] in " \t":
        before -= 1
    return before, end


def _line_ending(text):
    if "\r\n" in text:
        return "\r\n"
    if "\r" in text and "\n" not in text:
        return "\r"
    return "\n"


def edit_netrc_text(text, machine, login=None, password=None):
    """Return `text` with every entry for `machine` replaced by one new entry, or removed.

    With `login` and `password` the first entry is replaced in place, later copies are removed, and
    when there was none the new entry goes before any `default` entry or at the end. Without them
    every entry for `machine` is removed. Nothing else in the text changes.
    """
    entries = _scan_netrc(text)
    ours = [entry for entry in entries if entry.kind == "machine" and entry.name == machine]
    defaults = [entry for entry in entries if entry.kind == "default"]
    new_line = None
    if login is not None:
        new_line = "machine %s login %s password %s" % (machine, login, password)
    eol = _line_ending(text)

    # A default entry matches every host, so readers that stop at the first match (ftp, curl)
    # would never reach an entry after it: an entry of ours found there is moved before it.
    first_default = defaults[0].start if defaults else len(text) + 1
    replace_in_place = new_line is not None and ours and ours[0].start < first_default

    pieces = []
    position = 0
    for index, entry in enumerate(ours):
        span_start, span_end = _entry_span(text, entry)
        if index == 0 and replace_in_place:
            pieces.append(text[position:entry.start])
            pieces.append(new_line)
            position = entry.end
        else:
            pieces.append(text[position:span_start])
            position = span_end
    pieces.append(text[position:])
    result = "".join(pieces)
    if new_line is None or replace_in_place:
        return result

    remaining = [entry for entry in _scan_netrc(result) if entry.kind == "default"]
    if remaining:
        insert_at = remaining[0].start
        line_start = max(result.rfind("\n", 0, insert_at), result.rfind("\r", 0, insert_at)) + 1
        if result[line_start:insert_at].strip(" \t") == "":
            return result[:line_start] + new_line + eol + result[line_start:]
        return result[:insert_at] + eol + new_line + eol + result[insert_at:]

    tail = ""
    if result and not result.endswith(("\n", "\r")):
        tail += eol
    scanned = _scan_netrc(result)
    if scanned and scanned[-1].kind == "macdef" and scanned[-1].open_macro:
        # Without an empty line the reader would take our entry as more lines of the macro.
        tail += eol
    return result + tail + new_line + eol


def validate_netrc_value(label, value):
    """Raise UsageError unless `value` reads back the same in every netrc reader.

    Python 3.8 to 3.10 and 3.11 and newer tokenize quotes, backslashes and `#` differently, so only
    plain printable ASCII without those characters is written.
    """
    if not value:
        raise UsageError("the %s is empty" % label)
    if len(value) > MAX_NETRC_TOKEN:
        # The reader refuses longer words, so such an entry would lock every later command out.
        raise UsageError("the %s is %d characters long; at most %d fit in a netrc file"
                         % (label, len(value), MAX_NETRC_TOKEN))
    for character in value:
        if not ("!" <= character <= "~"):
            described = "a space" if character == " " else "the character %r" % character
            raise UsageError(
                "the %s contains %s, which a netrc file cannot store; use printable ASCII "
                "without spaces" % (label, described)
            )
        if character in "\"'\\":
            raise UsageError(
                "the %s contains %r, which netrc readers treat differently; leave it out"
                % (label, character)
            )
    if value.startswith("#"):
        raise UsageError("the %s starts with '#', which netrc readers take as a comment" % label)


class _DirectoryLock(object):
    """An exclusive lock on the netrc file's directory, held while the file is read and replaced.

    The directory is locked rather than the file because the file is replaced by rename, which
    would leave a lock on the old file behind. Where `fcntl` is missing (Windows), a lock file
    created with O_EXCL takes its place.
    """

    def __init__(self, directory, target, use_fcntl=True, timeout=30.0):
        self.directory = directory
        self.lock_path = target + ".lock"
        self.timeout = timeout
        self.descriptor = None
        self.fcntl = None
        if use_fcntl:
            try:
                import fcntl

                self.fcntl = fcntl
            except ImportError:
                self.fcntl = None

    def __enter__(self):
        if self.fcntl is not None:
            try:
                self.descriptor = os.open(self.directory, os.O_RDONLY)
                self.fcntl.flock(self.descriptor, self.fcntl.LOCK_EX)
            except OSError as error:
                if self.descriptor is not None:
                    os.close(self.descriptor)
                raise NetrcError("cannot lock the folder %s (%s)" % (self.directory, error.strerror or error))
            return self
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.descriptor = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                return self
            except OSError as error:
                if not isinstance(error, FileExistsError):
                    raise NetrcError("cannot create the lock file %s (%s)"
                                     % (self.lock_path, error.strerror or error))
                if time.monotonic() > deadline:
                    raise NetrcError(
                        "another sliceofml is changing the file (lock file %s); if none is "
                        "running, remove the lock file" % self.lock_path
                    )
                time.sleep(0.05)

    def __exit__(self, *exc_info):
        if self.fcntl is not None:
            self.fcntl.flock(self.descriptor, self.fcntl.LOCK_UN)
            os.close(self.descriptor)
            return
        os.close(self.descriptor)
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass


def _check_rewrite(new_path, before, machine, login, password, display_path):
    """Raise NetrcError unless the new file parses to `before` plus or minus our entry."""
    try:
        after = _parse_netrc(new_path)
    except NetrcError as error:
        # The edited copy is a temporary file; the user knows only their own file and its lines.
        where = " (line %d of the edited file)" % error.lineno if error.lineno else ""
        raise NetrcError("Python's netrc module could not parse the file after the edit%s: %s; left "
                         "unchanged. An entry that ends without a value (such as `login` with "
                         "nothing after it) takes in the next entry; complete it, then try again"
                         % (where, error.reason), display_path)
    if login is not None:
        found = after.hosts.get(machine)
        if not found or found[0] != login or found[2] != password:
            raise NetrcError("the edited file did not read back our entry; left unchanged", display_path)
    elif machine in after.hosts:
        raise NetrcError("the edited file still contains our entry; left unchanged", display_path)
    if before is None:
        return
    others_before = {host: value for host, value in before.hosts.items() if host != machine}
    others_after = {host: value for host, value in after.hosts.items() if host != machine}
    if others_before != others_after or before.macros != after.macros:
        raise NetrcError(
            "editing would change other entries as this Python reads them; left unchanged",
            display_path,
        )


_TEMPORARY_PREFIX = ".sliceofml-netrc-"


def _remove_stale_temporary_files(directory):
    """Remove temporary files that a killed sliceofml left behind; they may contain a token.

    Called with the directory lock held, so no running sliceofml is writing one of them.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(_TEMPORARY_PREFIX) and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _check_same_in_all_pythons(text, display_path):
    """Raise NetrcError when Python 3.8 to 3.10 and Python 3.11 and newer see different entries.

    The two netrc lexers differ on `#` after an entry's fields, quotes and backslashes. An edit
    that is right for one of them could hide an entry from the other, or reveal one, so such a
    file is left for the user to straighten out.
    """
    old = [(entry.kind, entry.name, entry.start) for entry in _scan_netrc(text, new_lexer=False)]
    new = [(entry.kind, entry.name, entry.start) for entry in _scan_netrc(text, new_lexer=True)]
    if old == new:
        return
    differing = [entry for entry in old if entry not in new] + [entry for entry in new if entry not in old]
    offset = min(entry[2] for entry in differing)
    raise NetrcError(
        "Python 3.8 to 3.10 and Python 3.11 and newer read this line differently (a '#' after an "
        "entry, or quotes or backslashes), so sliceofml does not edit the file; put each entry on "
        "a line of its own without trailing comments, then try again",
        display_path,
        text.count("\n", 0, offset) + 1,
    )


def _check_entries_found(text, machine, directory, display_path):
    """Raise NetrcError unless removing the entries the scanner found leaves none for the reader.

    A copy that only the standard library reader sees (behind an unusual comment, say) would
    otherwise survive a logout, or shadow a new login.
    """
    import tempfile

    descriptor, scratch = tempfile.mkstemp(prefix=_TEMPORARY_PREFIX, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(edit_netrc_text(text, machine).encode("utf-8"))
        hidden = machine in _parse_netrc(scratch).hosts
    except NetrcError:
        hidden = True
    finally:
        os.unlink(scratch)
    if hidden:
        raise NetrcError(
            "the file has an entry for %s that sliceofml cannot edit safely (it follows a comment "
            "or a line end it does not expect); edit that entry by hand" % machine,
            display_path,
        )


def _write_atomically(target, data, mode, check, owner=None):
    """Replace `target` with `data` so that a crash leaves the old file or the new one, never a part.

    The temporary file is created 0600 by mkstemp, so the token is never readable by others, and is
    checked by `check(path)` before the rename.
    """
    import tempfile

    directory = os.path.dirname(target) or "."
    descriptor, temporary = tempfile.mkstemp(prefix=_TEMPORARY_PREFIX, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        if owner is not None and hasattr(os, "chown"):
            try:
                os.chown(temporary, owner[0], owner[1])
            except OSError:
                pass
        check(temporary)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):
        try:
            directory_descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(directory_descriptor)
        except OSError:
            pass
        finally:
            os.close(directory_descriptor)


def update_netrc(path, machine, login=None, password=None, use_fcntl=True):
    """Store (login, password) for `machine` in the netrc file at `path`, or remove it when None.

    Return True when the file changed. Symbolic links are followed, so a linked dotfile stays a link.
    """
    import stat

    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    try:
        os.stat(path)
    except FileNotFoundError:
        # Nothing to remove; a login creates the file, or the target of a dangling link.
        if login is None:
            return False
    except OSError as error:
        raise NetrcError("cannot read the file (%s)" % (error.strerror or error), path)
    if not os.path.isdir(directory):
        raise NetrcError("the folder %s does not exist; create it, or set NETRC to a file in an "
                         "existing folder" % directory, path)
    with _DirectoryLock(directory, target, use_fcntl=use_fcntl):
        # Read again under the lock, so that a concurrent login's entry is kept.
        text = _read_netrc_text(target)
        before = None
        # Whatever the old mode, the token is for the owner's eyes only.
        mode = 0o600
        owner = None
        _remove_stale_temporary_files(directory)
        if text is not None:
            _check_same_in_all_pythons(text, path)
            info = os.stat(target)
            if os.name == "posix" and not info.st_mode & stat.S_IWUSR:
                raise NetrcError(
                    "the file is read-only (mode %o); make it writable with chmod 600, then try again"
                    % stat.S_IMODE(info.st_mode),
                    path,
                )
            owner = (info.st_uid, info.st_gid)
            before = _parse_netrc(target)
            if login is None and machine not in before.hosts:
                return False
        if before is not None and machine in before.hosts:
            _check_entries_found(text, machine, directory, path)
        new_text = edit_netrc_text(text or "", machine, login, password)
        if new_text == text:
            if os.name == "posix" and stat.S_IMODE(info.st_mode) != mode:
                os.chmod(target, mode)
            return False

        def check(temporary):
            _check_rewrite(temporary, before, machine, login, password, path)

        try:
            _write_atomically(target, new_text.encode("utf-8"), mode, check, owner)
        except OSError as error:
            raise NetrcError("cannot write the file (%s)" % (error.strerror or error), path)
        return True


# ==============================================================================================
# HTTP client
#
# One method sends requests and turns HTTP statuses and transport failures into the errors above.
# One loop decides what is retried, what is waited out and what ends the run.
# ==============================================================================================


def parse_api_url(url):
    """Return (base URL without a trailing slash, host name) or raise UsageError.

    Plain http:// is accepted only for loopback hosts, because the bearer token travels in a header.
    """
    from urllib.parse import urlsplit

    if not url.strip() or any(not ("!" <= character <= "~") for character in url.strip()):
        raise UsageError("SLICEOFML_API_URL %r contains a space or a character outside printable "
                         "ASCII; expected https://HOST[:PORT]" % _one_line(url, 200))
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # Raises ValueError for a port that is not a number.
    except ValueError as error:
        raise UsageError("SLICEOFML_API_URL %r is not a valid URL (%s)" % (url, error))
    if parts.scheme not in ("https", "http") or not host:
        raise UsageError(
            "SLICEOFML_API_URL %r is not a valid URL; expected https://HOST[:PORT]" % url
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError(
            "SLICEOFML_API_URL %r must not contain a query, fragment or user name" % url
        )
    if parts.scheme == "http" and not _is_loopback(host):
        raise UsageError(
            "SLICEOFML_API_URL %r uses http://, which is accepted only for loopback hosts "
            "(127.0.0.1, ::1, localhost); use https://" % url
        )
    return url.strip().rstrip("/"), host.lower()


def _is_loopback(host):
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Response(object):
    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name):
        value = self.headers.get(name) if self.headers is not None else None
        return value.strip() if isinstance(value, str) else None

    def json(self):
        """Return the parsed JSON body, or None when the body is not JSON."""
        import json

        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None


_HANDLER_CLASSES = None


def _handler_classes():
    """Return the urllib handler classes for (redirects, http, https), built once.

    urllib's default redirect handler copies the Authorization header to wherever the server
    redirects, which would hand the bearer token to another host, so redirects are followed only
    within the same origin. The http and https handlers watch each connection and close it when
    the request's whole time is up, because a socket timeout alone restarts with every byte.
    """
    global _HANDLER_CLASSES
    if _HANDLER_CLASSES is not None:
        return _HANDLER_CLASSES
    import http.client
    import urllib.request
    from urllib.parse import urljoin, urlsplit

    class SameOriginRedirectHandler(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, request, stream, code, message, headers, new_url):
            new_url = urljoin(request.full_url, new_url)
            old, new = urlsplit(request.full_url), urlsplit(new_url)
            if (old.scheme, old.netloc) != (new.scheme, new.netloc):
                raise APIError(
                    "the API returned HTTP %d, a redirect to %s://%s, which was not followed so "
                    "that the bearer token is not sent to another host"
                    % (code, _one_line(new.scheme, 20), _one_line(new.netloc, 100)),
                    status=code,
                )
            return super().redirect_request(request, stream, code, message, headers, new_url)

    class WatchedConnection(object):
        """A connection that starts its request's deadline before it connects."""

        def __init__(self, *args, **kwargs):
            self.watch = kwargs.pop("watch")
            super().__init__(*args, **kwargs)

        def connect(self):
            self.watch.arm(self)
            super().connect()
            self.watch.sock = self.sock

    class WatchedHandler(object):
        """A urllib handler that hands its request's deadline to each connection it opens."""

        def __init__(self, watch):
            super().__init__()
            self.watch = watch

    class WatchedHTTPConnection(WatchedConnection, http.client.HTTPConnection):
        pass

    class WatchedHTTPHandler(WatchedHandler, urllib.request.HTTPHandler):
        def http_open(self, request):
            return self.do_open(_with_watch(WatchedHTTPConnection, self.watch), request)

    handlers = [SameOriginRedirectHandler, WatchedHTTPHandler, None]
    # Python built without the ssl module has no HTTPSConnection.
    if hasattr(http.client, "HTTPSConnection"):

        class WatchedHTTPSConnection(WatchedConnection, http.client.HTTPSConnection):
            pass

        class WatchedHTTPSHandler(WatchedHandler, urllib.request.HTTPSHandler):
            def https_open(self, request):
                return self.do_open(_with_watch(WatchedHTTPSConnection, self.watch), request,
                                    context=self._context)

        handlers[2] = WatchedHTTPSHandler
    _HANDLER_CLASSES = tuple(handlers)
    return _HANDLER_CLASSES


def _with_watch(connection_class, watch):
    def make_connection(*args, **kwargs):
        return connection_class(*args, watch=watch, **kwargs)

    return make_connection


class _RequestWatch(object):
    """A deadline for one request that closes its connection when the time is up."""

    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds
        self.timer = None
        self.connection = None
        # The connected socket. http.client drops its reference once the response headers are
        # read, while the body may still be arriving.
        self.sock = None
        self.expired = False

    def arm(self, connection):
        import threading

        self.cancel()
        self.connection = connection
        self.timer = threading.Timer(max(self.deadline - time.monotonic(), 0), self.expire)
        self.timer.daemon = True
        self.timer.start()

    def expire(self):
        import socket

        self.expired = True
        sock = self.sock or getattr(self.connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self):
        if self.timer is not None:
            self.timer.cancel()
            # A cancelled timer thread ends at once; joining it leaves no thread behind at exit.
            self.timer.join()


class ApiClient(object):
    """Sends requests to the X API with timeouts, retries and rate-limit waits."""

    def __init__(self, api_url, api_host, bearer_token=None, token_source="netrc",
                 timeout=DEFAULT_TIMEOUT, retry_delay=DEFAULT_RETRY_DELAY,
                 max_wait=DEFAULT_MAX_WAIT, log=None, reporter=None, cancel=None,
                 command="python3 sliceofml.py"):
        import random
        import threading

        self.api_url = api_url
        self.api_host = api_host
        self.bearer_token = bearer_token
        self.token_source = token_source
        self.command = command
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.max_wait = max_wait
        self.log = log or (lambda message: None)
        self.reporter = reporter
        self.cancel = cancel or threading.Event()
        self.random = random.Random()
        # The last x-rate-limit-remaining the API sent; the pager slows down when it runs low.
        self.rate_limit_remaining = None
        self.user_agent = "sliceofml/%s Python/%s" % (__version__, ".".join(map(str, sys.version_info[:3])))

    # -- one request ---------------------------------------------------------------------------

    def send(self, method, path, params=None, body=None, headers=None):
        """Send one request and return the _Response, whatever its status.

        Raise NetworkError for transport failures and APIError for a refused redirect.
        """
        import http.client
        import socket
        import urllib.error
        import urllib.request
        from urllib.parse import urlencode

        url = self.api_url + path
        if params:
            url += "?" + urlencode(params)
        request_headers = {
            "User-Agent": self.user_agent,
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
        }
        if self.bearer_token and not (headers and "Authorization" in headers):
            request_headers["Authorization"] = "Bearer " + self.bearer_token
        request_headers.update(headers or {})
        request = urllib.request.Request(url, data=body, headers=request_headers, method=method)
        started = time.monotonic()
        watch = _RequestWatch(self.timeout)
        timed_out = NetworkError("the request to %s timed out after %g s" % (self.api_host, self.timeout))
        try:
            try:
                with self._opener(watch).open(request, timeout=self.timeout) as stream:
                    response = _Response(stream.status, stream.reason, stream.headers,
                                         self._read_body(stream, watch))
            except urllib.error.HTTPError as error:
                try:
                    error_body = self._read_body(error, watch)
                except (NetworkError, http.client.HTTPException, OSError):
                    error_body = b""
                response = _Response(error.code, error.reason, error.headers, error_body)
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, socket.timeout) or watch.expired:
                raise timed_out
            raise NetworkError("failed to connect to %s (%s); check the network connection and "
                               "SLICEOFML_API_URL" % (self.api_host, _describe_reason(reason)))
        except socket.timeout:
            raise timed_out
        except http.client.IncompleteRead:
            if watch.expired:
                raise timed_out
            raise NetworkError("the response from %s was cut short" % self.api_host)
        except (http.client.HTTPException, OSError) as error:
            if watch.expired:
                raise timed_out
            raise NetworkError("the connection to %s failed (%s)" % (self.api_host, _describe_reason(error)))
        except ValueError:
            # http.client rejects header values with line breaks. The message would repeat the
            # value, which may be the bearer token, so it is not shown.
            raise UsageError("the request to %s could not be sent: a header or the URL contains "
                             "an invalid character" % self.api_host)
        finally:
            watch.cancel()
        self.log("%s %s -> %d in %.2f s" % (method, url, response.status,
                                             time.monotonic() - started))
        remaining = _int_or_none(response.header("x-rate-limit-remaining"))
        if remaining is not None:
            self.rate_limit_remaining = remaining
        return response

    def _opener(self, watch):
        import urllib.request

        redirect_class, http_class, https_class = _handler_classes()
        handlers = [redirect_class(), http_class(watch)]
        if https_class is not None:
            handlers.append(https_class(watch))
        if _is_loopback(self.api_host):
            # A proxy from the environment must not carry loopback traffic somewhere else.
            handlers.append(urllib.request.ProxyHandler({}))
        return urllib.request.build_opener(*handlers)

    def _read_body(self, stream, watch):
        """Read the whole body before the deadline, at most MAX_BODY_BYTES, and undo gzip."""
        import zlib

        too_large = APIError("the response from %s is larger than %d MiB, which no search page is"
                             % (self.api_host, MAX_BODY_BYTES // 1048576))
        chunks = []
        size = 0
        while True:
            chunk = stream.read(65536)
            if watch.expired or time.monotonic() > watch.deadline:
                raise NetworkError("the request to %s timed out after %g s" % (self.api_host, self.timeout))
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise too_large
            chunks.append(chunk)
        body = b"".join(chunks)
        if (stream.headers.get("Content-Encoding") or "").strip().lower() == "gzip":
            try:
                # 16 + MAX_WBITS accepts exactly the gzip container. The output limit stops a
                # small compressed body from unpacking to gigabytes.
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                body = decompressor.decompress(body, MAX_BODY_BYTES)
                if decompressor.unconsumed_tail:
                    raise too_large
                if not decompressor.eof:
                    raise NetworkError("the gzip response from %s was cut short" % self.api_host)
            except zlib.error:
                raise NetworkError("the gzip response from %s is corrupt" % self.api_host)
        return body

    # -- retries and waits ---------------------------------------------------------------------

    def request_json(self, method, path, params=None, body=None, headers=None):
        """Send a request until it succeeds and return its JSON object.

        5xx statuses, transport failures, unreadable bodies and short per-second rate limits are
        retried with exponential backoff and jitter. A rate limit that resets within `max_wait`
        seconds is waited out. Everything else raises at once.
        """
        attempt = 0
        rate_limit_waits = 0
        while True:
            self._check_cancel()
            try:
                response = self.send(method, path, params, body, headers)
                if not 200 <= response.status < 300:
                    raise self.error_for(response)
                document = response.json()
                if not isinstance(document, dict):
                    raise NetworkError(
                        "the API returned HTTP %d with a body that is not a JSON object" % response.status
                    )
                return document
            except (APIError, NetworkError) as error:
                wait = getattr(error, "wait_seconds", None)
                if wait is not None:
                    rate_limit_waits += 1
                    if wait > self.max_wait:
                        error.args = ("%s; it resets in %s, which is longer than --max-wait %g s; "
                                      "try again later" % (error, _format_wait(wait), self.max_wait),)
                        raise
                    if rate_limit_waits > MAX_RATE_LIMIT_WAITS:
                        error.args = ("%s again after %d waits for the reset; try again later"
                                      % (error, MAX_RATE_LIMIT_WAITS),)
                        raise
                    self._wait("rate limit reached", wait)
                    continue
                if not getattr(error, "retryable", False):
                    raise
                attempt += 1
                if attempt >= ATTEMPTS_PER_PAGE:
                    error.args = ("%s (gave up after %d attempts)" % (error, attempt),)
                    raise
                delay = self.retry_delay * 2 ** (attempt - 1)
                delay += self.random.uniform(0, delay)
                self.log("retrying in %.2f s after: %s" % (delay, error))
                self._check_cancel()
                if self.reporter is not None:
                    self.reporter.retrying(delay, attempt + 1)
                self._pause(delay)

    def _check_cancel(self):
        if self.cancel.is_set():
            raise PagingStopped("stopped")

    def _pause(self, seconds):
        if self.cancel.wait(seconds):
            raise PagingStopped("stopped")

    def _wait(self, reason, seconds):
        """Sleep through a rate-limit reset, counting down on the terminal."""
        seconds = max(1, int(seconds + 0.999))
        self.log("%s; waiting %d s" % (reason, seconds))
        if self.reporter is not None:
            self.reporter.warn_wait(reason, seconds)
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self.reporter is not None:
                self.reporter.countdown(reason, int(left + 0.999))
            self._pause(min(1.0, left))
        if self.reporter is not None:
            self.reporter.countdown(reason, 0)

    # -- statuses ------------------------------------------------------------------------------

    def error_for(self, response):
        """Return the error that describes an unsuccessful response."""
        status = response.status
        document = response.json()
        problem = document if isinstance(document, dict) else {}
        described = _describe_problem(problem)

        if status == 401:
            if self.token_source == "environment":
                error = AuthError("the API rejected the bearer token in SLICEOFML_BEARER_TOKEN "
                                  "(HTTP 401); set a valid token or unset it")
            else:
                error = AuthError("the API rejected the saved bearer token (HTTP 401 %s); run `%s "
                                  "login --relogin`" % (described or "Unauthorized", self.command))
            error.problem = problem
            return error

        if status == 429:
            if str(problem.get("type", "")).endswith("/usage-capped"):
                return APIError("the plan's post cap is spent (%s); waiting will not help until the "
                                "cap resets, see the developer portal" % described, status=429)
            remaining = _int_or_none(response.header("x-rate-limit-remaining"))
            if remaining is not None and remaining > 0:
                return APIError("the API is limiting requests per second (HTTP 429)", status=429,
                                retryable=True)
            reset = _int_or_none(response.header("x-rate-limit-reset"))
            wait = 60 if reset is None else max(1, reset - _server_now(response))
            return APIError("the rate limit is reached (HTTP 429)", status=429, wait_seconds=wait)

        if 300 <= status < 400:
            return APIError("the API returned HTTP %d, a redirect that did not lead to a response "
                            "(a loop, or no Location)" % status, status=status)

        if status >= 500:
            kind = "an HTML page, probably from a proxy" if _looks_like_html(response) else described
            message = "the API returned HTTP %d %s" % (status, response.reason or "")
            if kind:
                message += " (%s)" % kind
            return APIError(message.replace("  ", " "), status=status, retryable=True)

        message = "the API returned HTTP %d %s" % (status, response.reason or "")
        if described:
            message = "%s: %s" % (message.strip(), described)
        elif _looks_like_html(response):
            message += " (an HTML page, probably from a proxy)"
        server_time = _server_now(response) if response.header("Date") else None
        error = APIError(message.strip(), status=status, server_time=server_time)
        error.problem = problem
        return error


def _format_wait(seconds):
    """Format a wait for a message: seconds, minutes or hours, and no absurd numbers.

    >>> [_format_wait(s) for s in (42, 600, 7200, 10 ** 22)]
    ['42 s', '10 min', '2.0 h', 'more than a day']
    """
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min" % (seconds // 60)
    if seconds <= 86400:
        return "%.1f h" % (seconds / 3600.0)
    return "more than a day"


def _describe_reason(reason):
    text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return text


def _int_or_none(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _server_now(response):
    """Return the server's clock from its Date header, so that a wrong local clock does not matter."""
    from email.utils import parsedate_tz, mktime_tz

    value = response.header("Date")
    try:
        parsed = parsedate_tz(value) if value else None
        if parsed is not None:
            return mktime_tz(parsed)
    except (ValueError, OverflowError, TypeError):
        pass
    return int(time.time())


def _looks_like_html(response):
    content_type = (response.header("Content-Type") or "").lower()
    return "html" in content_type or response.body[:200].lstrip().lower().startswith((b"<!doctype", b"<html"))


def _describe_problem(problem):
    """Join the API's own words of a problem JSON or v1.1 error body into one line."""
    parts = []
    for key in ("title", "detail"):
        value = problem.get(key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
    for key in ("reason", "required_enrollment"):
        value = problem.get(key)
        if isinstance(value, str) and value:
            parts.append("%s: %s" % (key.replace("_", " "), value))
    errors = problem.get("errors")
    if isinstance(errors, list):
        for item in errors[:5]:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                message = item["message"]
                if isinstance(item.get("code"), int):
                    message += " (code %d)" % item["code"]
                parts.append(message)
    url = problem.get("registration_url")
    if isinstance(url, str) and url:
        parts.append("see " + url)
    return _one_line(". ".join(part.rstrip(".") for part in parts))


def fetch_bearer_token(client, api_key, api_secret):
    """Trade the app's API key and secret for an app-only bearer token."""
    import base64
    from urllib.parse import quote

    credentials = "%s:%s" % (quote(api_key, safe=""), quote(api_secret, safe=""))
    headers = {
        "Authorization": "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii"),
        "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
    }
    try:
        document = client.request_json("POST", TOKEN_PATH, body=b"grant_type=client_credentials",
                                       headers=headers)
    except (APIError, AuthError) as error:
        if isinstance(error, AuthError) or error.status in (401, 403):
            raise AuthError(
                "X rejected the API key and secret (HTTP %d%s). Use the app's Consumer Keys "
                "\"API Key and Secret\" from the Keys and tokens page, not the OAuth 2.0 Client ID "
                "and Client Secret" % (getattr(error, "status", None) or 401, _api_words(error))
            )
        raise
    token_type = document.get("token_type")
    token = document.get("access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise APIError("the token endpoint returned token_type %s instead of a bearer token"
                       % _one_line(repr(token_type), 60))
    if not isinstance(token, str) or not token:
        raise APIError("the token endpoint returned no access_token")
    return token


def _api_words(error):
    problem = getattr(error, "problem", None) or {}
    described = _describe_problem(problem)
    return ": " + described if described else ""


# ==============================================================================================
# Search and ranking
# ==============================================================================================


class TopPosts(object):
    """The best N posts seen so far, by rank_key, and the ids of every post seen.

    Memory stays flat as pages arrive: only N posts keep their text.
    """

    def __init__(self, size):
        self.size = size
        self.heap = []
        self.seen = set()

    def add(self, post):
        """Count the post unless it was seen before; return True when it was new."""
        import heapq

        # Ids are kept as ints, which take about half the memory of their strings.
        key = int(post.id)
        if key in self.seen:
            return False
        self.seen.add(key)
        entry = (post.rank_key(), post.id, post)
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)
        return True

    def ranked(self):
        """Return the kept posts, best first."""
        return [entry[2] for entry in sorted(self.heap, key=lambda entry: entry[:2], reverse=True)]


_ENTITY = None


def decode_entities(text):
    """Decode the three HTML entities the API escapes, exactly once.

    >>> decode_entities("a &amp;amp; b &lt;3")
    'a &amp; b <3'
    """
    global _ENTITY
    if _ENTITY is None:
        import re

        _ENTITY = re.compile(r"&(amp|lt|gt);")
    return _ENTITY.sub(lambda match: {"amp": "&", "lt": "<", "gt": ">"}[match.group(1)], text)


def _count(value):
    """Return a metric as an int: missing, negative, absurd or non-integer values count as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 13:
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_METRIC:
        return value
    return 0


def _post_id(value):
    """Return a post id as a string of ASCII digits, or None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** MAX_ID_DIGITS:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS:
        return value
    return None


_SURROGATE = None


def _without_surrogates(text):
    """Replace lone surrogates, which JSON escapes can carry but no encoder can write, with U+FFFD."""
    global _SURROGATE
    if _SURROGATE is None:
        import re

        _SURROGATE = re.compile("[\ud800-\udfff]")
    return _SURROGATE.sub("\ufffd", text)


def read_page(document, top_posts):
    """Add a search page's posts to `top_posts`; return (posts in page, next_token, partial errors)."""
    users = {}
    includes = document.get("includes")
    if isinstance(includes, dict) and isinstance(includes.get("users"), list):
        for user in includes["users"]:
            if isinstance(user, dict) and isinstance(user.get("username"), str):
                users[str(user.get("id"))] = user["username"]
    data = document.get("data")
    if data is not None and not isinstance(data, list):
        raise APIError("the API returned a search page whose data is a %s, not a list of posts"
                       % type(data).__name__)
    count = 0
    if isinstance(data, list):
        for item in data:
            post = _post_from_json(item, users)
            if post is not None:
                top_posts.add(post)
                count += 1
    meta = document.get("meta")
    next_token = meta.get("next_token") if isinstance(meta, dict) else None
    if not isinstance(next_token, str) or not next_token:
        next_token = None
    errors = document.get("errors")
    partial = [item for item in errors if isinstance(item, dict)] if isinstance(errors, list) else []
    return count, next_token, partial


def _post_from_json(item, users):
    if not isinstance(item, dict):
        return None
    post_id = _post_id(item.get("id"))
    if post_id is None:
        return None
    text = item.get("text")
    note = item.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"]:
        # `text` is cut at about 280 characters for long posts; note_tweet.text has all of it.
        text = note["text"]
    if not isinstance(text, str):
        text = ""
    metrics = item.get("public_metrics")
    if not isinstance(metrics, dict):
        metrics = {}
    created_at = item.get("created_at")
    username = users.get(str(item.get("author_id")))
    return Post(
        id=post_id,
        username=_without_surrogates(username) if username else None,
        text=_without_surrogates(decode_entities(text)),
        like_count=_count(metrics.get("like_count")),
        retweet_count=_count(metrics.get("retweet_count")),
        created_at=created_at if isinstance(created_at, str) else "",
    )


class SliceResult(object):
    """The outcome of one slice run: top posts, pages and posts read, and why paging stopped."""

    def __init__(self, window, posts, pages, posts_read, stop_reason=None, budget_spent=False,
                 partial_errors=()):
        self.window = window
        self.posts = posts
        self.pages = pages
        self.posts_read = posts_read
        self.stop_reason = stop_reason
        self.budget_spent = budget_spent
        self.partial_errors = list(partial_errors)

    @property
    def complete(self):
        return self.stop_reason is None


_START_TIME_FLOOR = None
_END_TIME_TOO_LATE = "'end_time' must be a minimum of"


def _corrected_end(error):
    """Return an end_time the server accepts after a 400 that reports ours too late, or None.

    That happens when the local clock is ahead of the server's; the response's Date header gives
    the server's clock.
    """
    if _END_TIME_TOO_LATE not in str(error) or error.server_time is None:
        return None
    return error.server_time - END_TIME_MARGIN


def _corrected_start(error):
    """Return the earliest start_time a 400 names, plus a margin, or None."""
    global _START_TIME_FLOOR
    if _START_TIME_FLOOR is None:
        import re

        _START_TIME_FLOOR = re.compile(
            r"'start_time' must be on or after (\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?(?:\.\d+)?Z)"
        )
    match = _START_TIME_FLOOR.search(str(error))
    if not match:
        return None
    floor = parse_rfc3339(match.group(1))
    return None if floor is None else floor + START_TIME_CORRECTION


class _WindowState(object):
    """Paging progress through one sub-window."""

    def __init__(self, window):
        self.window = window
        self.next_token = None
        self.pages = 0
        self.done = False
        self.busy = False
        # Each time is corrected at most once after a 400, so a server that keeps rejecting ends
        # the paging instead of looping. The two flags are separate because a clock fix may come
        # before a 7-day fix.
        self.start_corrected = False
        self.end_corrected = False
        self.tokens_seen = set()


def fetch_page(client, state):
    """Fetch the next page of a sub-window.

    A 400 that reports start_time too old or end_time too late, because the 7-day limit moved
    while paging or the clocks disagree, is retried with the times the server accepts, once for
    each of the two.
    """
    while True:
        params = {"query": SEARCH_QUERY}
        params.update(SEARCH_FIELDS)
        params["start_time"] = format_rfc3339(state.window.start)
        params["end_time"] = format_rfc3339(state.window.end)
        if state.next_token:
            params["next_token"] = state.next_token
        try:
            return client.request_json("GET", SEARCH_PATH, params)
        except APIError as error:
            if error.status != 400:
                raise
            start = None if state.start_corrected else _corrected_start(error)
            end = None if state.end_corrected else _corrected_end(error)
            if start is None and end is None:
                raise
            if start is not None:
                state.start_corrected = True
                state.window.start = max(state.window.start, start)
            if end is not None:
                state.end_corrected = True
                state.window.end = min(state.window.end, end)
            client.log("searching %s to %s after: %s" % (format_rfc3339(state.window.start),
                                                        format_rfc3339(state.window.end), error))
            if state.window.start >= state.window.end:
                return {"meta": {"result_count": 0}}


def collect_posts(client, window, top, max_pages, workers, reporter=None):
    """Page through recent search for `window` and return a SliceResult.

    With more than one worker the window is split into sub-windows read concurrently, each with its
    own next_token. The page budget is shared so that no sub-window falls more than one page behind
    another while the budget is short, so a budget of at least one page per sub-window reads every
    day of a week. After an error ends the paging, requests still running get STOP_GRACE seconds
    to finish before their pages are given up.
    """
    import queue
    import threading

    if workers > 1:
        states = [_WindowState(piece) for piece in window.split(WINDOW_SPLITS[window.name])]
    else:
        states = [_WindowState(TimeWindow(window.name, window.start, window.end))]
    top_posts = TopPosts(top)
    results = queue.Queue()
    tasks = queue.Queue()
    partial_errors = []
    pages_read = 0
    pages_issued = 0
    in_flight = 0
    stop_error = None
    stop_deadline = None

    def work():
        while True:
            state = tasks.get()
            if state is None:
                return
            try:
                results.put((state, fetch_page(client, state), None))
            except BaseException as error:  # Handed to the main thread, which decides.
                results.put((state, None, error))

    threads = [threading.Thread(target=work, name="sliceofml-page-%d" % i, daemon=True)
               for i in range(min(workers, len(states)))]
    for thread in threads:
        thread.start()

    def allowed(state, active):
        # While pages are short, a sub-window may run ahead of the slowest one only by its share of
        # what is left, so the budget ends spread evenly across the time window.
        lowest = min(other.pages for other in active)
        share = (max_pages - pages_issued) // len(active)
        return state.pages < lowest + 1 + share

    try:
        while True:
            active = [state for state in states if not state.done]
            limit = len(threads)
            # One request at a time until the first response reports how many requests are left,
            # and again whenever few are.
            remaining = client.rate_limit_remaining
            if (remaining is None and pages_read == 0) or (remaining is not None and remaining < LOW_REMAINING):
                limit = 1
            while stop_error is None and in_flight < limit and pages_issued < max_pages:
                ready = [state for state in active if not state.busy and allowed(state, active)]
                if not ready:
                    break
                state = min(ready, key=lambda candidate: candidate.pages)
                state.busy = True
                state.pages += 1
                pages_issued += 1
                in_flight += 1
                tasks.put(state)
            if in_flight == 0 or (stop_deadline is not None and time.monotonic() > stop_deadline):
                break
            try:
                state, document, error = results.get(timeout=0.2)
            except queue.Empty:
                continue
            in_flight -= 1
            state.busy = False
            if error is not None:
                state.pages -= 1
                if isinstance(error, (AuthError, KeyboardInterrupt)) or not isinstance(error, SliceError):
                    raise error
                if stop_error is None:
                    stop_error, stop_deadline = error, time.monotonic() + STOP_GRACE
                    client.cancel.set()
                continue
            try:
                _, next_token, partial = read_page(document, top_posts)
            except SliceError as error:
                if stop_error is None:
                    stop_error, stop_deadline = error, time.monotonic() + STOP_GRACE
                    client.cancel.set()
                continue
            pages_read += 1
            partial_errors.extend(partial)
            state.next_token = next_token
            if next_token is None:
                state.done = True
            elif next_token in state.tokens_seen:
                state.done = True
                if stop_error is None:
                    stop_error = APIError("the API returned a next_token it had sent before; paging "
                                          "stopped so that the same pages are not read and billed again")
                    stop_deadline = time.monotonic() + STOP_GRACE
                    client.cancel.set()
            else:
                state.tokens_seen.add(next_token)
            if reporter is not None:
                reporter.progress(window.name, pages_read, len(top_posts.seen))
    finally:
        client.cancel.set()
        for _ in threads:
            tasks.put(None)
        # NOTE: one run on CPython 3.12.1 aborted at exit (malloc_consolidate), and we could not
        # reproduce it. Daemon threads still running while the interpreter exits are a known source
        # of such crashes, so idle workers, which end at once, are joined. A worker stuck in a
        # stalled request is not waited for beyond this short bound.
        give_up = time.monotonic() + 0.5
        for thread in threads:
            thread.join(max(0.0, give_up - time.monotonic()))

    budget_spent = pages_issued >= max_pages and any(not state.done for state in states)
    stop_reason = None
    if stop_error is not None:
        if pages_read == 0 or isinstance(stop_error, PagingStopped):
            raise stop_error
        stop_reason = str(stop_error)
    # Times corrected after a 400 are what was searched, so they are what the result reports.
    searched = TimeWindow(window.name, min(state.window.start for state in states),
                          max(state.window.end for state in states))
    return SliceResult(searched, top_posts.ranked(), pages_read, len(top_posts.seen), stop_reason,
                       budget_spent, partial_errors)


# ==============================================================================================
# Terminal rendering
#
# Anatomy of the table (plain output, 64 columns):
#
#                       Your weekly slice of ML                 <- title, centred
#                   02 Dec 12:00 – 09 Dec 11:59 UTC             <- time window, centred
#   ╭───┬──────────────────────────────────────────────────┬───────╮
#   │ # │ Post                                             │ Likes │   <- header row
#   ├───┼──────────────────────────────────────────────────┼───────┤
#   │ 1 │ @example_lab                                     │ 1,894 │   <- author, when no Author column fits
#   │   │ Our new paper on sparse attention & long context │       │   <- post text wrapped on words
#   │   │ is out                                           │       │
#   │   │ https://x.com/example_lab/status/186234567890123 │       │   <- link, when no Link column fits
#   │   │ 4567                                             │       │
#   ╰───┴──────────────────────────────────────────────────┴───────╯
#            2,345 posts read in 24 pages · top 1 by likes          <- caption
#
# Wider tables get an Author column, then a Link column (plain URL, or "view" as an OSC 8 link).
#
# Widths are computed on plain text, cell by cell, and styles (colour, OSC 8 links) are wrapped
# around the padded cells afterwards, so escape sequences never count towards a width.
# ==============================================================================================

_UNICODE_GLYPHS = {
    "top": ("╭", "─", "┬", "╮"),
    "middle": ("├", "─", "┼", "┤"),
    "bottom": ("╰", "─", "┴", "╯"),
    "vertical": "│",
    "ellipsis": "…",
    "dash": "–",
    "dot": "·",
}
# For code pages such as cp437 and cp850, which have square box corners but no rounded ones.
_SQUARE_GLYPHS = {
    "top": ("┌", "─", "┬", "┐"),
    "middle": ("├", "─", "┼", "┤"),
    "bottom": ("└", "─", "┴", "┘"),
    "vertical": "│",
    "ellipsis": "...",
    "dash": "-",
    "dot": "-",
}
_ASCII_GLYPHS = {
    "top": ("+", "-", "+", "+"),
    "middle": ("+", "-", "+", "+"),
    "bottom": ("+", "-", "+", "+"),
    "vertical": "|",
    "ellipsis": "...",
    "dash": "-",
    "dot": "-",
}
# Post cells longer than this many lines end with an ellipsis; --json keeps the whole text.
MAX_POST_LINES = 12
MIN_WIDTH = 30
_BIDI_CONTROLS = frozenset(list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)) + [0x200E, 0x200F, 0x061C])


class Style(object):
    """The output capabilities of one stream: colour, OSC 8 links, box-drawing glyphs, encoding."""

    def __init__(self, color=False, links=False, unicode=True, encoding="utf-8", glyphs=None):
        self.color = color
        self.links = links
        self.unicode = unicode
        self.encoding = encoding
        self.glyphs = glyphs or (_UNICODE_GLYPHS if unicode else _ASCII_GLYPHS)

    def paint(self, text, codes):
        """Wrap text in SGR codes (e.g. "1;36") when colour is on."""
        if not self.color or not codes or not text:
            return text
        return "\x1b[%sm%s\x1b[0m" % (codes, text)

    def link(self, text, url):
        """Make text an OSC 8 hyperlink to url when links are on."""
        if not self.links or not url or not text:
            return text
        return "\x1b]8;;%s\x1b\\%s\x1b]8;;\x1b\\" % (url, text)


def decide_style(stream, environ, os_name=None, kernel32=None):
    """Decide colour, links and glyphs for `stream` from NO_COLOR, FORCE_COLOR, TERM, isatty and encoding."""
    import codecs

    os_name = os_name or os.name
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "ascii"
    glyphs = _ASCII_GLYPHS
    for candidate in (_UNICODE_GLYPHS, _SQUARE_GLYPHS):
        try:
            "".join("".join(value) for value in candidate.values()).encode(encoding)
        except UnicodeEncodeError:
            continue
        glyphs = candidate
        break
    try:
        is_terminal = stream.isatty()
    except (AttributeError, ValueError, OSError):
        is_terminal = False
    if environ.get("NO_COLOR"):
        color = False
    elif environ.get("FORCE_COLOR"):
        color = True
    elif environ.get("TERM") == "dumb" or not is_terminal:
        color = False
    else:
        color = True
        if os_name == "nt":
            color = enable_windows_ansi(kernel32)
    return Style(color=color, links=color, unicode=glyphs is not _ASCII_GLYPHS, encoding=encoding,
                 glyphs=glyphs)


def enable_windows_ansi(kernel32=None):
    """Turn on escape-sequence processing of the Windows console; return False when it cannot be done."""
    try:
        import ctypes
    except ImportError:
        return False
    if kernel32 is None:
        try:
            kernel32 = ctypes.windll.kernel32
        except (AttributeError, OSError):
            return False
    try:
        handle = kernel32.GetStdHandle(-11)  # STD_OUTPUT_HANDLE
        mode = ctypes.c_uint32()
        if not kernel32.GetConsoleMode(handle, ctypes.pointer(mode)):
            return False
        # 0x0004 is ENABLE_VIRTUAL_TERMINAL_PROCESSING (Windows 10 1511 and newer).
        return bool(kernel32.SetConsoleMode(handle, mode.value | 0x0004))
    except (AttributeError, OSError, ValueError):
        return False


def terminal_width(stream, environ):
    """Return COLUMNS when it is a positive number, else the terminal's width, else 80.

    Widths above MAX_WIDTH are taken as MAX_WIDTH.
    """
    value = _int_or_none(environ.get("COLUMNS"))
    if value is not None and value > 0:
        return min(value, MAX_WIDTH)
    try:
        if stream.isatty():
            columns = os.get_terminal_size(stream.fileno()).columns
            if columns > 0:
                return min(columns, MAX_WIDTH)
    except (AttributeError, ValueError, OSError):
        pass
    return 80


_ESCAPE_SEQUENCE = None


def clean_text(text):
    """Make untrusted text safe to print: no control characters, no bidi overrides.

    Newlines stay as line breaks, tabs become spaces; C0 and C1 controls (ESC among them), bidi
    embeddings, overrides, isolates and marks, which could take over the terminal or reorder the
    table, are removed.

    >>> clean_text("a\\tb\\x1b[2Jc\\u202ed\\x1b]0;title\\x07\\r\\n")
    'a bcd\\n'
    """
    global _ESCAPE_SEQUENCE
    if _ESCAPE_SEQUENCE is None:
        import re

        # CSI (ESC [ or 0x9B) and OSC/DCS/APC strings (ESC ] P _ ^ or their C1 forms) as a whole, so
        # that their parameters do not show up as text.
        _ESCAPE_SEQUENCE = re.compile(
            "(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]"
            "|(?:\x1b[\\]P_^X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)?"
            "|\x1b[@-_]"
        )
    text = _ESCAPE_SEQUENCE.sub("", text)
    out = []
    for character in text:
        code = ord(character)
        if character == "\n":
            out.append("\n")
        elif character == "\t":
            out.append(" ")
        elif code < 0x20 or 0x7F <= code < 0xA0 or code in _BIDI_CONTROLS:
            continue
        elif code in (0x2028, 0x2029):
            out.append("\n")
        elif 0xD800 <= code < 0xE000:
            out.append("\ufffd")
        else:
            out.append(character)
    return "".join(out)


def _is_zero_width(character):
    import unicodedata

    code = ord(character)
    if code == 0x200D or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:
        return True
    if 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F or 0x1160 <= code <= 0x11FF:
        return True
    return unicodedata.category(character) in ("Mn", "Me", "Cf")


def _base_width(character):
    import unicodedata

    code = ord(character)
    # Emoji blocks count as wide even where this Python's Unicode tables predate the emoji.
    if 0x1F300 <= code <= 0x1F64F or 0x1F900 <= code <= 0x1FAFF:
        return 2
    if unicodedata.east_asian_width(character) in ("W", "F"):
        return 2
    return 1


def split_clusters(text):
    """Split text into user-perceived characters with their display widths in terminal cells.

    Combining marks, variation selectors, skin-tone modifiers and zero width joiners attach to the
    character before them; a regional-indicator pair is one flag. VS16 makes a symbol wide.

    >>> [width for _, width in split_clusters("a机❤️👩‍🔬e\\u0301")]
    [1, 2, 2, 2, 1]
    """
    clusters = []
    joined = False
    for character in text:
        code = ord(character)
        if clusters and (joined or _is_zero_width(character)):
            cluster, width = clusters[-1]
            if code == 0xFE0F:
                width = 2
            elif joined and width == 0:
                width = _base_width(character)
            clusters[-1] = (cluster + character, width)
            joined = code == 0x200D
            continue
        if (clusters and 0x1F1E6 <= code <= 0x1F1FF and len(clusters[-1][0]) == 1
                and 0x1F1E6 <= ord(clusters[-1][0]) <= 0x1F1FF):
            clusters[-1] = (clusters[-1][0] + character, 2)
            continue
        joined = code == 0x200D
        clusters.append((character, 0 if _is_zero_width(character) else _base_width(character)))
    return clusters


def display_width(text):
    """Return the number of terminal cells text takes, escape sequences excluded.

    >>> display_width("\\x1b[1mML\\x1b[0m 机器学习")
    11
    """
    import re

    text = re.sub(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return sum(width for _, width in split_clusters(text))


def _encodable_clusters(text, encoding):
    """Return the clusters of text, with those the encoding cannot carry replaced by '?'."""
    clusters = split_clusters(text)
    if encoding.replace("-", "").replace("_", "").lower() in ("utf8", "utf16", "utf32"):
        return clusters
    result = []
    for cluster, width in clusters:
        try:
            cluster.encode(encoding)
            result.append((cluster, width))
        except UnicodeEncodeError:
            result.append(("?", 1))
    return result


def wrap_text(text, width, encoding="utf-8", max_lines=None, ellipsis="…"):
    """Wrap text on spaces into lines of at most `width` cells; over-long words are broken.

    Return a list of (line, cells). Runs of empty lines are kept to one.

    >>> [line for line, _ in wrap_text("the quick brown fox", 9)]
    ['the quick', 'brown fox']
    """
    lines = []
    for paragraph in text.split("\n"):
        words = [word for word in paragraph.split(" ") if word]
        if not words:
            if lines and lines[-1][1] > 0:
                lines.append(("", 0))
            continue
        current, cells = [], 0
        for clusters, spaced in _break_opportunities(words, encoding):
            word_cells = sum(w for _, w in clusters)
            gap = 1 if spaced and current else 0
            if current and cells + gap + word_cells <= width:
                if gap:
                    current.append((" ", 1))
                current.extend(clusters)
                cells += gap + word_cells
                continue
            if current:
                lines.append(_joined(current))
                current, cells = [], 0
            for cluster in clusters:
                if cells + cluster[1] > width and current:
                    lines.append(_joined(current))
                    current, cells = [], 0
                current.append(cluster)
                cells += cluster[1]
        if current:
            lines.append(_joined(current))
    while lines and lines[-1][1] == 0:
        lines.pop()
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = truncate(lines[-1][0], width, ellipsis, end=True)
    return lines or [("", 0)]


def _break_opportunities(words, encoding):
    """Yield (clusters, spaced) pieces between which a line may break.

    Words break at spaces; CJK text, which has none, may also break before and after each wide
    ideograph. `spaced` is True when a space separates the piece from the one before.
    """
    for word in words:
        piece = []
        spaced = True
        for cluster in _encodable_clusters(word, encoding):
            ideograph = cluster[1] == 2 and ord(cluster[0][0]) < 0x1F000
            if piece and (ideograph or piece[-1][2]):
                yield [item[:2] for item in piece], spaced
                piece, spaced = [], False
            piece.append(cluster + (ideograph,))
        if piece:
            yield [item[:2] for item in piece], spaced


def _joined(clusters):
    return "".join(cluster for cluster, _ in clusters), sum(width for _, width in clusters)


def truncate(text, width, ellipsis="…", end=False):
    """Cut text to `width` cells, ending with the ellipsis when anything was cut (or `end` is set)."""
    clusters = split_clusters(text)
    total = sum(w for _, w in clusters)
    if total <= width and not end:
        return text, total
    room = max(width - display_width(ellipsis), 0)
    kept_clusters, cells = [], 0
    for cluster, cluster_width in clusters:
        if cells + cluster_width > room:
            break
        kept_clusters.append(cluster)
        cells += cluster_width
    text = "".join(kept_clusters).rstrip()
    cells = display_width(text)
    return text + ellipsis, cells + display_width(ellipsis)


class _Cell(object):
    """The lines of one table cell: (text, cells, SGR codes, link URL)."""

    def __init__(self, lines, align="left"):
        self.lines = lines
        self.align = align


def _format_count(number):
    return "{:,}".format(number)


def _time_window_label(window, style):
    start = time.strftime("%d %b %H:%M", time.gmtime(window.start))
    end = time.strftime("%d %b %H:%M", time.gmtime(window.end))
    return "%s %s %s UTC" % (start, style.glyphs["dash"], end)


def _profile_url(post):
    from urllib.parse import quote

    return "https://x.com/" + quote(post.username, safe="") if post.username else None


def _post_url(post):
    from urllib.parse import quote

    # x.com redirects /i/status/ID to the post, so a post whose author is unknown still has a link.
    return "%s/status/%s" % (_profile_url(post) or "https://x.com/i", quote(post.id, safe=""))


def render_table(result, style, width):
    """Return the table for a SliceResult as text, every line at most `width` cells wide."""
    width = max(width, MIN_WIDTH)
    glyphs = style.glyphs
    encoding = style.encoding
    ellipsis = glyphs["ellipsis"]
    posts = result.posts

    ranks = [str(index + 1) for index in range(len(posts))]
    authors = []
    for post in posts:
        name = clean_text(post.username).replace("\n", " ") if post.username else ""
        authors.append("@" + name if name else "(unknown)")
    urls = [_post_url(post) for post in posts]
    likes = [_format_count(post.like_count) for post in posts]

    rank_width = max([1] + [len(rank) for rank in ranks])
    likes_width = max([5] + [len(value) for value in likes])
    author_width = min(max([6] + [display_width(author) for author in authors]), 16)
    url_width = max([4] + [len(url) for url in urls])

    # Columns drop in this order as the width shrinks: the link moves into the post cell (plain
    # output) or onto the rank (terminal links), then the author moves into the post cell.
    show_author = True
    show_link = True
    link_width = 4 if style.links else url_width
    post_width = 0
    for _ in range(3):
        fixed = [rank_width, likes_width] + ([author_width] if show_author else [])
        fixed += [link_width] if show_link else []
        columns = len(fixed) + 1
        post_width = width - sum(fixed) - 3 * columns - 1
        min_post_width = 30 if show_link else 24
        # Plain output keeps the link on one line, so it can be copied.
        if not show_link and not style.links and show_author:
            min_post_width = max(min_post_width, url_width)
        if post_width >= min_post_width:
            break
        if show_link:
            show_link = False
        elif show_author:
            show_author = False
    post_width = max(post_width, 5)

    header = [("#", rank_width, "right")]
    if show_author:
        header.append(("Author", author_width, "left"))
    header.append(("Post", post_width, "left"))
    if show_link:
        header.append(("Link", link_width, "left"))
    header.append(("Likes", likes_width, "right"))
    widths = [column[1] for column in header]

    rows = []
    for index, post in enumerate(posts):
        url = urls[index]
        rank_link = url if style.links and not show_link else None
        cells = [_Cell([(ranks[index], len(ranks[index]), "2", rank_link)], "right")]
        author_text, author_cells = truncate(_encodable_text(authors[index], encoding), author_width,
                                             ellipsis)
        profile = _profile_url(post)
        author_line = (author_text, author_cells, "36", profile)
        post_lines = []
        if show_author:
            cells.append(_Cell([author_line]))
        else:
            narrow_author = truncate(_encodable_text(authors[index], encoding), post_width, ellipsis)
            post_lines.append(narrow_author + ("36", profile))
        for line, line_cells in wrap_text(clean_text(post.text), post_width, encoding, MAX_POST_LINES,
                                          ellipsis):
            post_lines.append((line, line_cells, "", None))
        if not show_link and not style.links:
            for line, line_cells in wrap_text(url, post_width, "ascii"):
                post_lines.append((line, line_cells, "2", None))
        cells.append(_Cell(post_lines))
        if show_link:
            if style.links:
                cells.append(_Cell([("view", 4, "34;4", url)]))
            else:
                cells.append(_Cell([(url, len(url), "2", None)]))
        cells.append(_Cell([(likes[index], len(likes[index]), "1;35", None)], "right"))
        rows.append(cells)

    table_width = sum(widths) + 3 * len(widths) + 1
    out = []
    title = "Your %s slice of ML" % result.window.name
    out.append(_centred(title, table_width, style, "1"))
    out.append(_centred(_time_window_label(result.window, style), table_width, style, "2"))
    out.append(_rule(glyphs["top"], widths, style))
    header_cells = [_Cell([(name, len(name), "1", None)], align) for name, _, align in header]
    out.extend(_row_lines(header_cells, widths, style))
    for cells in rows:
        out.append(_rule(glyphs["middle"], widths, style))
        out.extend(_row_lines(cells, widths, style))
    if not rows:
        out.append(_rule(glyphs["middle"], widths, style))
        empty = "No machine-learning posts in this time window."
        inner = table_width - 4
        for line, cells in wrap_text(empty, inner):
            out.append(_boxed_line(line, cells, inner, style))
    out.append(_rule(glyphs["bottom"], widths, style))
    for line in _caption_lines(result, style, table_width):
        out.append(_centred(line, table_width, style, "2"))
    return "\n".join(out) + "\n"


def _encodable_text(text, encoding):
    return "".join(cluster for cluster, _ in _encodable_clusters(text, encoding))


def _caption_lines(result, style, width):
    """Return the caption as lines of at most `width` cells, breaking only between its parts."""
    dot = " %s " % style.glyphs["dot"]
    parts = ["%s posts read in %s %s" % (_format_count(result.posts_read), _format_count(result.pages),
                                         "page" if result.pages == 1 else "pages")]
    if result.posts:
        parts.append("top %d by likes" % len(result.posts))
    if result.budget_spent:
        parts.append("page budget reached")
    if not result.complete:
        parts.append("stopped early")
    lines = [parts[0]]
    for part in parts[1:]:
        if display_width(lines[-1] + dot + part) <= width:
            lines[-1] += dot + part
        else:
            lines.append(part)
    return lines


def _centred(text, width, style, codes):
    text, cells = truncate(clean_text(text).replace("\n", " "), width, style.glyphs["ellipsis"])
    left = (width - cells) // 2
    return (" " * left + style.paint(text, codes)).rstrip(" ") if cells else ""


def _rule(parts, widths, style):
    left, fill, joint, right = parts
    return style.paint(left + joint.join(fill * (w + 2) for w in widths) + right, "2")


def _boxed_line(text, cells, inner, style):
    bar = style.paint(style.glyphs["vertical"], "2")
    return "%s %s%s %s" % (bar, text, " " * (inner - cells), bar)


def _row_lines(cells, widths, style):
    bar = style.paint(style.glyphs["vertical"], "2")
    height = max(len(cell.lines) for cell in cells)
    lines = []
    for row in range(height):
        parts = []
        for cell, width in zip(cells, widths):
            if row < len(cell.lines):
                text, cells_used, codes, url = cell.lines[row]
            else:
                text, cells_used, codes, url = "", 0, "", None
            padding = " " * max(width - cells_used, 0)
            styled = style.link(style.paint(text, codes), url)
            parts.append(padding + styled if cell.align == "right" else styled + padding)
        lines.append(bar + " " + (" " + bar + " ").join(parts) + " " + bar)
    return lines


def render_json(result, ascii_only=False):
    """Return the --json document for a SliceResult."""
    import json

    document = {
        "window": result.window.name,
        "start_time": format_rfc3339(result.window.start),
        "end_time": format_rfc3339(result.window.end),
        "pages": result.pages,
        "posts_read": result.posts_read,
        "complete": result.complete,
        "stop_reason": result.stop_reason,
        "page_budget_spent": result.budget_spent,
        "partial_errors": len(result.partial_errors),
        "posts": [
            {
                "rank": index + 1,
                "id": post.id,
                "username": post.username,
                "text": post.text,
                "like_count": post.like_count,
                "retweet_count": post.retweet_count,
                "created_at": post.created_at,
                "url": _post_url(post),
            }
            for index, post in enumerate(result.posts)
        ],
    }
    return json.dumps(document, ensure_ascii=ascii_only, indent=2) + "\n"


class Reporter(object):
    """Progress and waits on stderr: overwritten in place on a terminal, one line each otherwise."""

    def __init__(self, stream, is_terminal, width=80):
        import threading

        self.stream = stream
        self.is_terminal = is_terminal
        # A status line that wraps could not be cleared, so it is cut to the terminal's width.
        self.width = width
        self.lock = threading.Lock()
        self.dirty = False
        self.closed = False

    def _status(self, text):
        if not self.is_terminal:
            return
        text = truncate(text, max(self.width - 1, 1))[0]
        with self.lock:
            # A worker that finishes after the result is printed must not draw over it.
            if self.closed:
                return
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
            self.dirty = True

    def progress(self, window_name, pages, posts):
        # The counts come first, so a narrow terminal that cuts the line still shows them.
        self._status("%s time window: %s %s, %s posts read" % (
            window_name, _format_count(pages), "page" if pages == 1 else "pages", _format_count(posts)))

    def warn_wait(self, reason, seconds):
        if not self.is_terminal:
            with self.lock:
                self.stream.write("sliceofml: warning: %s; waiting %d s before going on\n" % (reason, seconds))
                self.stream.flush()

    def retrying(self, seconds, attempt):
        # Only on a terminal: scripts get the outcome, and --debug logs each retry with its cause.
        wait = "%.1f s" % seconds if seconds < 10 else _format_wait(seconds)
        self._status("retrying in %s (attempt %d of %d) after a failed request" % (wait, attempt, ATTEMPTS_PER_PAGE))

    def countdown(self, reason, seconds):
        self._status("%s; going on in %d s (Ctrl-C stops)" % (reason, seconds))

    def clear(self):
        with self.lock:
            if self.dirty:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
                self.dirty = False

    def close(self):
        """Clear the status line for good; later progress from a lingering worker is dropped."""
        self.clear()
        with self.lock:
            self.closed = True


# ==============================================================================================
# Commands
#
# Each command takes the parsed arguments and a Context and returns an exit code. It raises
# SliceError for anything that goes wrong, and main() alone turns errors into messages.
# ==============================================================================================


class Context(object):
    """Everything a command reads from outside: environment, streams and derived settings."""

    def __init__(self, environ, stdin, stdout, stderr, debug=False, command="python3 sliceofml.py"):
        self.environ = environ
        # How to run this tool again, for the hints in messages.
        self.command = command
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.debug = debug
        # The Reporter showing a status line on stderr while a command pages or retries, if any.
        self.reporter = None
        self.api_url, self.api_host = parse_api_url(environ.get("SLICEOFML_API_URL") or DEFAULT_API_URL)
        self.netrc_path = default_netrc_path(environ)
        self.machine = netrc_machine(self.api_host)

    def log(self, message):
        """Write a debug line; bearer tokens and API keys are never passed here."""
        if self.debug:
            if self.reporter is not None:
                self.reporter.clear()
            self.stderr.write("sliceofml: debug: %s\n" % message)
            self.stderr.flush()

    def say(self, message):
        self.stderr.write(message + "\n")
        self.stderr.flush()

    def warn(self, message):
        self.say("sliceofml: warning: " + message)

    def retry_delay(self):
        value = self.environ.get("SLICEOFML_RETRY_DELAY")
        if not value:
            return DEFAULT_RETRY_DELAY
        try:
            delay = float(value)
        except ValueError:
            delay = -1.0
        if not 0 <= delay <= 600:
            raise UsageError("SLICEOFML_RETRY_DELAY %r is not a number of seconds from 0 to 600" % value)
        return delay


class Credentials(object):
    """A bearer token and where it came from."""

    def __init__(self, token, source, path=None, machine=None, app_name=None):
        self.token = token
        self.source = source  # "environment", "netrc" or "legacy netrc"
        self.path = path
        self.machine = machine
        self.app_name = app_name


def _usable_token(token):
    """Return True when the token can travel in an Authorization header as it is."""
    return bool(token) and all("!" <= character <= "~" for character in token)


def find_credentials(context):
    """Return the Credentials to use, or None when there is no bearer token anywhere.

    A token that cannot be sent in an HTTP header is an error, and the message never repeats it.
    """
    token = context.environ.get("SLICEOFML_BEARER_TOKEN", "").strip()
    if token:
        if not _usable_token(token):
            raise UsageError("SLICEOFML_BEARER_TOKEN contains a space, a line break or a character "
                             "outside printable ASCII; set it to the bearer token alone")
        return Credentials(token, "environment")
    parsed = load_netrc(context.netrc_path)
    if parsed is None:
        return None
    credentials = None
    entry = parsed.hosts.get(context.machine)
    if entry and entry[2]:
        credentials = Credentials(entry[2], "netrc", context.netrc_path, context.machine, entry[0])
    elif context.api_host == "api.x.com":
        legacy = parsed.hosts.get(LEGACY_MACHINE)
        if legacy and legacy[2]:
            credentials = Credentials(legacy[2], "legacy netrc", context.netrc_path, LEGACY_MACHINE,
                                      legacy[0])
    if credentials is not None and not _usable_token(credentials.token):
        raise NetrcError("the password of machine %s contains a space, a line break or a character "
                         "outside printable ASCII, so it is not a bearer token; run `%s login "
                         "--relogin`" % (credentials.machine, context.command), context.netrc_path)
    return credentials


def _make_reporter(context):
    """Return a Reporter for stderr, and route debug lines through it so that they start a line."""
    stderr = context.stderr
    context.reporter = Reporter(stderr, _is_terminal(stderr), terminal_width(stderr, context.environ))
    return context.reporter


def _make_client(context, args, credentials=None, reporter=None):
    return ApiClient(
        context.api_url,
        context.api_host,
        bearer_token=credentials.token if credentials else None,
        token_source=credentials.source if credentials else "none",
        timeout=getattr(args, "timeout", DEFAULT_TIMEOUT),
        retry_delay=context.retry_delay(),
        max_wait=getattr(args, "max_wait", DEFAULT_MAX_WAIT),
        log=context.log,
        reporter=reporter,
        command=context.command,
    )


def emit(context, text):
    """Write data to stdout; raise SliceError when stdout is closed or the write fails."""
    _write_stdout(context.stdout, text)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


_KEYS_HELP = [
    "Log in to X with your app's API key and secret.",
    "",
    "Find them in the X developer portal: open your app,",
    "then its \"Keys and tokens\" page, under Consumer Keys:",
    "\"API Key and Secret\" (Regenerate shows new ones).",
    "The OAuth 2.0 Client ID and Client Secret on the same",
    "page do not work here.",
]
DEVELOPER_PORTAL_URL = "https://developer.x.com/en/portal/dashboard"


def _framed(lines, style):
    """Return lines in a rounded box, the portal address as a link where the terminal has them."""
    glyphs = style.glyphs
    inner = max(display_width(line) for line in lines + [DEVELOPER_PORTAL_URL])
    top_left, fill, _, top_right = glyphs["top"]
    bottom_left, _, _, bottom_right = glyphs["bottom"]
    bar = glyphs["vertical"]
    framed = [style.paint(top_left + fill * (inner + 2) + top_right, "2")]
    for line in lines + ["", DEVELOPER_PORTAL_URL]:
        shown = style.link(style.paint(line, "4"), line) if line == DEVELOPER_PORTAL_URL else line
        framed.append("%s %s%s %s" % (style.paint(bar, "2"), shown, " " * (inner - display_width(line)),
                                      style.paint(bar, "2")))
    framed.append(style.paint(bottom_left + fill * (inner + 2) + bottom_right, "2"))
    return "\n".join(framed)


def _read_line(stream, limit=-1):
    """Return the next line without its line end, or None at the end of input.

    With a limit, a longer line raises UsageError instead of being read into memory whole.
    """
    line = stream.readline(limit + 1 if limit >= 0 else -1)
    if limit >= 0 and len(line) > limit and not line.endswith("\n"):
        raise UsageError("standard input has a line longer than %d characters, more than any "
                         "value sliceofml stores" % limit)
    return line.rstrip("\r\n") if line else None


def _prompt_hidden(context, prompt, label):
    """Read a secret from the terminal without echo; raise UsageError on Ctrl-D or an empty line."""
    import getpass

    try:
        value = getpass.getpass(prompt, stream=context.stderr).strip()
    except EOFError:
        context.say("")
        value = ""
    if not value:
        raise UsageError("no %s entered; run `%s login` again and paste it from the developer "
                         "portal" % (label, context.command))
    return value


def _ask_for_keys(context, default_app_name):
    """Return (API key, API key secret, app name) from the terminal or from three stdin lines."""
    if _is_terminal(context.stdin):
        style = decide_style(context.stderr, context.environ)
        context.say(_framed(_KEYS_HELP, style))
        api_key = _prompt_hidden(context, "API key: ", "API key")
        api_secret = _prompt_hidden(context, "API key secret: ", "API key secret")
        context.stderr.write("App name [%s]: " % default_app_name)
        context.stderr.flush()
        line = _read_line(context.stdin)
        if line is None:
            context.say("")
        app_name = (line or "").strip()
    else:
        lines = [_read_line(context.stdin, MAX_NETRC_TOKEN + 64) for _ in range(3)]
        api_key, api_secret, app_name = [(line or "").strip() for line in lines]
        if not api_key or not api_secret:
            raise UsageError(
                "login reads three lines from standard input: API key, API key secret and app "
                "name; the key or the secret is missing"
            )
    if not api_key:
        raise UsageError("the API key is empty")
    if not api_secret:
        raise UsageError("the API key secret is empty")
    return api_key, api_secret, app_name or default_app_name


def login(args, context):
    """Store a bearer token for the API host in the netrc file."""
    app_name = DEFAULT_APP_NAME if args.app_name is None else args.app_name
    validate_netrc_value("app name", app_name)
    path = context.netrc_path
    # Parse first, so that a broken file is reported before any key is typed.
    existing = load_netrc(path)
    entry = existing.hosts.get(context.machine) if existing else None

    if args.with_token:
        if _is_terminal(context.stdin):
            token = _prompt_hidden(context, "Bearer token: ", "bearer token")
        else:
            token = _read_line(context.stdin, MAX_NETRC_TOKEN + 64) or ""
        # A byte-order mark comes with text saved by some Windows editors.
        token = token.lstrip("\ufeff").strip()
        if not token:
            raise UsageError("no bearer token on standard input; pipe it in as one line, e.g. "
                             "`%s login --with-token < token.txt`" % context.command)
        # A token copied from an Authorization header or from API docs often keeps its scheme word.
        words = token.split(None, 1)
        scheme_removed = words[0].lower() == "bearer"
        if scheme_removed:
            if len(words) == 1:
                raise UsageError("the token is only the word 'Bearer'; give the token that follows it")
            token = words[1].strip()
        validate_netrc_value("token", token)
        update_netrc(path, context.machine, app_name, token)
        context.say('Logged in to %s as app "%s". Saved the bearer token in %s%s.'
                    % (context.api_host, app_name, path,
                       " (without the leading 'Bearer')" if scheme_removed else ""))
        return EXIT_OK

    if entry and not args.relogin:
        context.say('Already logged in to %s as app "%s" (%s). Run `%s login --relogin` to replace '
                    "the token, or `%s login --with-token` to store one you have."
                    % (context.api_host, clean_text(entry[0]), path, context.command, context.command))
        return EXIT_OK

    api_key, api_secret, app_name = _ask_for_keys(context, app_name)
    validate_netrc_value("app name", app_name)
    reporter = _make_reporter(context)
    client = _make_client(context, args, reporter=reporter)
    try:
        token = fetch_bearer_token(client, api_key, api_secret)
    finally:
        reporter.close()
        context.reporter = None
    try:
        validate_netrc_value("token", token)
    except UsageError as error:
        # The message quotes at most one character of the token, never the token itself.
        raise APIError("the token endpoint returned an access_token that sliceofml cannot store: %s"
                       % str(error).split(";")[0].replace("the token ", "it ", 1))
    update_netrc(path, context.machine, app_name, token)
    context.say('Logged in to %s as app "%s". Saved the bearer token in %s.'
                % (context.api_host, app_name, path))
    return EXIT_OK


def slice_posts(args, context):
    """Print the most-liked machine-learning posts of the time window."""
    credentials = find_credentials(context)
    if credentials is None:
        raise AuthError("no bearer token found for %s; run `%s login` or set SLICEOFML_BEARER_TOKEN"
                        % (context.api_host, context.command))
    if credentials.source == "legacy netrc":
        context.log("using the original sliceofml's entry, machine %s" % LEGACY_MACHINE)
    reporter = _make_reporter(context)
    client = _make_client(context, args, credentials, reporter)
    window = make_time_window(args.window, time.time())
    context.log("time window %s to %s" % (format_rfc3339(window.start), format_rfc3339(window.end)))
    try:
        result = collect_posts(client, window, args.top, args.max_pages, args.workers, reporter)
    finally:
        reporter.close()
        context.reporter = None

    if result.partial_errors:
        first = result.partial_errors[0]
        words = first.get("detail") or first.get("title") or first.get("message") or "no detail"
        context.log("the API reported %d partial errors beside the posts (first: %s)"
                    % (len(result.partial_errors), _one_line(str(words), 200)))
    unknown = sum(1 for post in result.posts if not post.username)
    if unknown:
        # Partial errors that touch no shown post change nothing in the output, so only --debug
        # reports them.
        context.warn("the API did not return the author of %d shown %s, shown as (unknown)"
                     % (unknown, "post" if unknown == 1 else "posts"))
    style = decide_style(context.stdout, context.environ)
    if args.json:
        encoding = style.encoding.replace("-", "").replace("_", "").lower()
        emit(context, render_json(result, ascii_only=encoding != "utf8"))
    else:
        width = terminal_width(context.stdout, context.environ)
        emit(context, render_table(result, style, width))
    if result.stop_reason:
        context.warn("paging stopped early after %d %s: %s; showing the %d posts read so far"
                     % (result.pages, "page" if result.pages == 1 else "pages", result.stop_reason,
                        result.posts_read))
        return EXIT_FAILURE
    return EXIT_OK


def _describe_token(token):
    """Describe a token by at most its last 4 characters, and none of a short token."""
    if len(token) < 16:
        return "available (%d characters, too short to show any of it)" % len(token)
    return 'available, ends in "%s"' % token[-4:]


def status(args, context):
    """Report where the bearer token comes from, showing at most its last 4 characters."""
    import stat

    path = context.netrc_path
    lines = [("API host", context.api_host)]
    credentials = find_credentials(context)
    if credentials is None:
        lines.append(("Bearer token", "none; run `%s login`" % context.command))
        lines.append(("Source", "no SLICEOFML_BEARER_TOKEN, no entry for %s in %s"
                      % (context.machine, path)))
    else:
        lines.append(("Bearer token", _describe_token(credentials.token)))
        if credentials.source == "environment":
            lines.append(("Source", "environment variable SLICEOFML_BEARER_TOKEN"))
        elif credentials.source == "netrc":
            lines.append(("Source", "netrc file %s (machine %s)" % (path, credentials.machine)))
        else:
            lines.append(("Source", "netrc file %s (machine %s, written by the original 2022 "
                                    "sliceofml)" % (path, credentials.machine)))
        if credentials.app_name is not None:
            lines.append(("App name", _one_line(clean_text(credentials.app_name), 100) or "(none)"))
    emit(context, "".join("%-14s%s\n" % (label + ":", value) for label, value in lines))

    if os.path.exists(path):
        info = os.stat(path)
        if os.name == "posix" and info.st_mode & 0o077:
            context.warn("%s is readable or writable by other users (mode %o); Python's netrc module "
                         "rejects such a ~/.netrc in other tools; run: chmod 600 %s"
                         % (path, stat.S_IMODE(info.st_mode), path))
        parsed = load_netrc(path)
        for host in ("api.x.com", "api.twitter.com"):
            if host in parsed.hosts:
                context.warn("%s has an entry for machine %s; Python's requests library sends it as "
                             "Basic auth in place of other X clients' bearer token, so they fail "
                             "with 401; sliceofml needs only machine %s" % (path, host, context.machine))
    return EXIT_OK if credentials else EXIT_AUTH


def logout(args, context):
    """Remove this host's entry from the netrc file."""
    path = context.netrc_path
    if update_netrc(path, context.machine):
        context.say("Logged out: removed the entry for %s from %s." % (context.machine, path))
    else:
        context.say("Not logged in: %s has no entry for %s." % (path, context.machine))
    if context.api_host == "api.x.com":
        parsed = load_netrc(path)
        if parsed is not None and LEGACY_MACHINE in parsed.hosts:
            context.warn("%s still has the original sliceofml's entry (machine %s), which slice "
                         "uses when no other token is found; remove it by hand if you no longer "
                         "need it" % (path, LEGACY_MACHINE))
    if context.environ.get("SLICEOFML_BEARER_TOKEN", "").strip():
        context.warn("SLICEOFML_BEARER_TOKEN is still set, so slice keeps using that token until you "
                     "unset it")
    return EXIT_OK


def run_command(args, context):
    """Run the command that the parsed arguments name and return its exit code."""
    if context.debug:
        for name in ENVIRONMENT:
            if name in context.environ:
                value = context.environ[name]
                shown = "(set, hidden)" if name == "SLICEOFML_BEARER_TOKEN" else repr(value)
                context.log("%s=%s" % (name, shown))
    handlers = {"login": login, "slice": slice_posts, "status": status, "logout": logout}
    return handlers[args.command](args, context)
'''
_program_loaded = False


def _load_program():
    """Compile and run the program text in this module's namespace, once."""
    global _program_loaded
    if not _program_loaded:
        filename = globals().get("__file__") or "sliceofml.py"
        # Leading blank lines make line numbers in the compiled code match this file.
        code = compile("\n" * (_PROGRAM_FIRST_LINE - 1) + _PROGRAM, filename, "exec")
        exec(code, globals())
        _program_loaded = True


# ==============================================================================================
# Argument parser
# ==============================================================================================

# Written out instead of built with argparse, because importing argparse (with re, shutil and
# gettext behind it) costs about as much as starting Python, and `--help` should not. The help
# texts are plain strings, so what you read here is what users see. A test checks that each one
# names exactly the options, defaults, exit codes and environment variables defined in this file.

_MAIN_HELP = """\
usage: {prog} [-h] [--version] [--debug] COMMAND ...

The most-liked machine-learning posts on X of the last day or week.

commands:
  login   store a bearer token for the X API
  slice   show the most-liked machine-learning posts
  status  show where the bearer token comes from
  logout  remove the bearer token from the netrc file

options:
  -h, --help  show this help and exit
  --version   show the version and exit
  --debug     log each HTTP request and show tracebacks

exit codes:
  0    success, including a time window with no posts
  1    failure: network, API error, unreadable netrc file, bad data, paging
       stopped early
  2    usage error
  4    authentication needed: not logged in, key/secret rejected, token
       rejected
  130  interrupted (Ctrl-C)

environment variables:
  SLICEOFML_API_URL       API base URL (default https://api.x.com); http://
                          only for loopback hosts
  SLICEOFML_BEARER_TOKEN  bearer token to use instead of the netrc file; never
                          written anywhere
  SLICEOFML_RETRY_DELAY   seconds before the first retry of a failed request,
                          doubled per retry (default 1)
  NETRC                   path of the netrc file (default ~/.netrc)
  NO_COLOR                set and non-empty: no colour
  FORCE_COLOR             set and non-empty: colour even when stdout is not a
                          terminal (NO_COLOR wins)
  COLUMNS                 table width in terminal columns
  TERM                    'dumb' turns colour off
"""

_COMMAND_HELP = {
    "login": """\
usage: {prog} login [-h] [--debug] [--relogin] [--with-token]
       [--app-name NAME] [--timeout SECONDS]

Trade the X app's API key and secret for a bearer token and store it in the
netrc file. On a terminal it prompts for them; otherwise it reads three lines
from standard input: API key, API key secret, app name.

options:
  -h, --help         show this help and exit
  --debug            log each HTTP request and show tracebacks
  --relogin          replace an existing token
  --with-token       read a bearer token from standard input instead of key and
                     secret
  --app-name NAME    app name stored with the token (default: sliceofml)
  --timeout SECONDS  limit for the token request, 0.1 to 600 (default: 30)
""",
    "slice": """\
usage: {prog} slice [-h] [--debug] [--daily | --weekly] [--top N]
       [--max-pages N] [--timeout SECONDS] [--max-wait SECONDS] [--workers N]
       [--json]

Page through recent search for machine-learning posts and print the most liked.

options:
  -h, --help          show this help and exit
  --debug             log each HTTP request and show tracebacks
  --daily             posts of the last 24 hours (the default)
  --weekly            posts of the last 7 days
  --top N             how many posts to show, 1 to 100 (default: 10)
  --max-pages N       page budget, 1 to 10000, 100 posts a page (default: 100)
  --timeout SECONDS   limit for each HTTP request, 0.1 to 600 (default: 30)
  --max-wait SECONDS  maximum wait for a rate-limit reset, 0 to 3600 seconds
                      (default: 90)
  --workers N         concurrent requests, 1 to 16; 1 reads the window as one
                      sequential search (default: 7)
  --json              print one JSON document instead of the table
""",
    "status": """\
usage: {prog} status [-h] [--debug]

Show whether a bearer token is available and where it comes from. At most its
last 4 characters are shown.

options:
  -h, --help  show this help and exit
  --debug     log the settings in use and show tracebacks
""",
    "logout": """\
usage: {prog} logout [-h] [--debug]

Remove this API host's entry from the netrc file.

options:
  -h, --help  show this help and exit
  --debug     log the settings in use and show tracebacks
""",
}


class _Finished(Exception):
    """The end of parsing for --help and --version: the text to print on stdout before exit 0."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text


class _Option(object):
    """One option: its flag, how to read its value (None for a switch) and where the value goes."""

    def __init__(self, flag, convert=None, default=False, dest=None, const=True, group=None):
        self.flag = flag
        self.convert = convert
        self.default = default
        self.dest = dest or flag[2:].replace("-", "_")
        # What a switch stores when given.
        self.const = const
        # Options that share a group exclude each other.
        self.group = group


class _Arguments(object):
    """The parsed command line: `command` and one attribute per option of that command."""


def _shown(word, quote=False):
    """Return a word of the command line as a message shows it: cut short when long, and quoted
    when asked to or when it is empty or has spaces or characters a terminal cannot show."""
    if len(word) > 40:
        word = word[:37] + "..."
    if quote or not word or not word.isprintable() or any(character.isspace() for character in word):
        return repr(word)
    return word


def _number(parse, description, low, high, unit=""):
    """Return a converter that reads a number with `parse` and keeps it within low to high."""

    def convert(text):
        try:
            # Python also reads "1_0" and digits of other scripts; a command line should not.
            if "_" in text or not text.isascii():
                raise ValueError(text)
            value = parse(text)
        except ValueError:
            raise ValueError("%s is not %s" % (_shown(text, quote=True), description))
        if not low <= value <= high:
            raise ValueError("%s is not between %g and %g%s" % (_shown(text), low, high, unit))
        return value

    return convert


def _whole_number(low, high):
    return _number(int, "a whole number", low, high)


def _seconds(low, high):
    return _number(float, "a number of seconds", low, high, " seconds")


_HELP_OPTION = _Option("--help")
_DEBUG_OPTION = _Option("--debug")
_MAIN_OPTIONS = [_HELP_OPTION, _Option("--version"), _DEBUG_OPTION]
# Each command's options besides --help and --debug.
_COMMAND_OPTIONS = {
    "login": [
        _Option("--relogin"),
        _Option("--with-token"),
        _Option("--app-name", str, None),
        _Option("--timeout", _seconds(0.1, 600), DEFAULT_TIMEOUT),
    ],
    "slice": [
        _Option("--daily", default="daily", dest="window", const="daily", group="window"),
        _Option("--weekly", default="daily", dest="window", const="weekly", group="window"),
        _Option("--top", _whole_number(1, 100), DEFAULT_TOP),
        _Option("--max-pages", _whole_number(1, 10000), DEFAULT_MAX_PAGES),
        _Option("--timeout", _seconds(0.1, 600), DEFAULT_TIMEOUT),
        _Option("--max-wait", _seconds(0, 3600), DEFAULT_MAX_WAIT),
        _Option("--workers", _whole_number(1, MAX_WORKERS), DEFAULT_WORKERS),
        _Option("--json"),
    ],
    "status": [],
    "logout": [],
}


def command_name(argv0):
    """Return how the user ran this tool, for hints such as "run `sliceofml login`".

    An installed copy runs as `sliceofml`; the file itself as `python3 sliceofml.py`.
    """
    base = os.path.basename(argv0 or "")
    if base.startswith("sliceofml") and "." not in base:
        # A name that an ASCII terminal cannot show, or that would break a message, is not echoed.
        plain = all("!" <= character <= "~" for character in base)
        return base if plain else "sliceofml"
    return "python3 sliceofml.py"


def _is_option(word):
    """Tell an option from a value: "-5" and "-0.5" are values, as no option looks like a number."""
    if not word.startswith("-") or word == "-":
        return False
    return not word[1:].replace(".", "", 1).isdigit()


def _find_option(flag, options):
    """Return the option that `flag` names, exactly or as a unique prefix such as --week."""
    if flag == "-h":
        return _HELP_OPTION
    for option in options:
        if option.flag == flag:
            return option
    matches = [option for option in options if len(flag) > 2 and flag.startswith("--")
               and option.flag.startswith(flag)]
    if len(matches) > 1:
        raise ValueError("ambiguous option: %s could match %s"
                         % (_shown(flag), ", ".join(option.flag for option in matches)))
    return matches[0] if matches else None


def _misplaced_option(flag, equals, value, rest, prog):
    """Return a hint for a command's option given before the command, or None for other words."""
    owners = []
    for name, options in _COMMAND_OPTIONS.items():
        try:
            option = _find_option(flag, options)
        except ValueError:
            option = None
        if option is not None:
            owners.append((name, option))
    if not owners:
        return None
    # The command named later on the line, when it has this option, makes the best example.
    named = next((word for word in rest if word in _COMMAND_OPTIONS), None)
    name, option = next((owner for owner in owners if owner[0] == named), owners[0])
    example = [option.flag + equals + value]
    if option.convert is not None and not equals:
        has_value = rest and not _is_option(rest[0]) and rest[0] not in _COMMAND_OPTIONS
        example.append(rest[0] if has_value else "VALUE")
    return "%s is an option of %s; put it after the command, as in `%s %s %s`" % (
        _shown(flag), " and ".join(owner[0] for owner in owners), prog, name,
        " ".join(_shown(part) for part in example))


def _parse_arguments(argv, prog="python3 sliceofml.py"):
    """Return the parsed command line, or raise UsageError, or _Finished for --help and --version."""
    args = _Arguments()
    args.command = None
    args.debug = False
    options = _MAIN_OPTIONS
    chosen = {}
    unrecognized = []
    words = list(argv)
    position = 0
    after_dashes = False

    def fail(message):
        scope = prog if args.command is None else "%s %s" % (prog, args.command)
        return UsageError("%s (see `%s --help`)" % (message, scope))

    while position < len(words):
        word = words[position]
        position += 1
        if word == "--" and not after_dashes:
            after_dashes = True
            continue
        if after_dashes or not _is_option(word):
            if args.command is not None:
                unrecognized.append(word)
            elif word in _COMMAND_OPTIONS:
                args.command = word
                options = [_HELP_OPTION, _DEBUG_OPTION] + _COMMAND_OPTIONS[word]
                for option in options[2:]:
                    setattr(args, option.dest, option.default)
            else:
                raise fail("unknown command %s; choose from %s"
                           % (_shown(word, quote=True), ", ".join(_COMMAND_OPTIONS)))
            continue
        flag, equals, value = word.partition("=")
        try:
            option = _find_option(flag, options)
        except ValueError as error:
            raise fail(str(error))
        if option is None:
            misplaced = None if args.command else _misplaced_option(flag, equals, value, words[position:], prog)
            if misplaced:
                raise fail(misplaced)
            unrecognized.append(word)
            continue
        if option.convert is None and equals:
            raise fail("argument %s: takes no value, got %s" % (option.flag, _shown(value, quote=True)))
        if option.flag == "--help":
            text = _MAIN_HELP if args.command is None else _COMMAND_HELP[args.command]
            raise _Finished(text.format(prog=prog))
        if option.flag == "--version":
            raise _Finished("sliceofml %s\n" % __version__)
        if option.convert is None:
            value = option.const
        else:
            if not equals:
                if position == len(words) or _is_option(words[position]):
                    raise fail("argument %s: expected one argument" % option.flag)
                value = words[position]
                position += 1
            try:
                value = option.convert(value)
            except ValueError as error:
                raise fail("argument %s: %s" % (option.flag, error))
        if option.group is not None:
            first = chosen.setdefault(option.group, option)
            if first is not option:
                raise fail("argument %s: not allowed with argument %s" % (option.flag, first.flag))
        setattr(args, option.dest, value)
    if unrecognized:
        raise fail("unrecognized arguments: %s" % " ".join(_shown(word) for word in unrecognized))
    if args.command is None:
        raise fail("choose a command: login, slice, status or logout")
    return args


# ==============================================================================================
# main
# ==============================================================================================


def main(argv=None):
    """Run the command line and return the exit code."""
    import io

    argv = sys.argv[1:] if argv is None else list(argv)
    # A closed stream is None; messages then go nowhere rather than into an AttributeError.
    stderr = sys.stderr if sys.stderr is not None else io.StringIO()
    stdin = sys.stdin if sys.stdin is not None else io.StringIO()
    # Known before parsing, so that a bug in the parser still shows its traceback with --debug.
    debug = "--debug" in (argv[:argv.index("--")] if "--" in argv else argv)
    try:
        command = command_name(sys.argv[0] if sys.argv else "")
        try:
            args = _parse_arguments(argv, command)
        except _Finished as finished:
            _write_stdout(sys.stdout, finished.text)
            return EXIT_OK
        debug = debug or args.debug
        _load_program()
        return run_command(args, Context(os.environ, stdin, sys.stdout, stderr, debug, command))
    except SliceError as error:
        # A usage error's traceback would show only the parser.
        traceback_of = debug and not isinstance(error, UsageError) and error
        _report(stderr, "sliceofml: error: %s\n" % _one_line(str(error), 1000), traceback_of)
        return error.exit_code
    except KeyboardInterrupt:
        _report(stderr, "\nsliceofml: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`| head`); Python would complain again at exit.
        _silence_stdout()
        return EXIT_FAILURE
    except Exception as error:  # A bug: one line, and the traceback only with --debug.
        _report(stderr, "sliceofml: error: unexpected %s: %s (run with --debug for the traceback)\n"
                % (type(error).__name__, _one_line(str(error), 300)), debug and error)
        return EXIT_FAILURE


def _write_stdout(stdout, text):
    """Write output for the user; raise SliceError when stdout is closed or the write fails.

    A BrokenPipeError passes through, because main() ends quietly when the reader went away.
    """
    if stdout is None:
        raise SliceError("standard output is closed, so there is nowhere to print the result")
    try:
        stdout.write(text)
        stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as error:
        _silence_stdout()
        raise SliceError("cannot write to standard output (%s)" % (error.strerror or error))


def _report(stderr, message, error=None):
    """Write main()'s last message, after the traceback of `error` when given.

    A full or closed stderr must not replace the exit code with a traceback of its own, so a
    failed write is dropped.
    """
    try:
        if error:
            import traceback

            traceback.print_exception(type(error), error, error.__traceback__, file=stderr)
        stderr.write(message)
        stderr.flush()
    except (OSError, ValueError):
        pass


def _silence_stdout():
    """Point file descriptor 1 at the null device, so that Python's flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl-C before main() set up its own handling, while the interpreter was still starting.
        sys.stderr.write("\nsliceofml: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
else:
    # Imported by a test, doctest or another program: every section is defined at once.
    _load_program()
