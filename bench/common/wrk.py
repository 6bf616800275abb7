"""wrk (the OS package) against the gateway: a Lua script walks a file of requests (a user's token
and a path a line: many users, as in the office, each connection from its own starting point,
the Authorization header set per request), and the
``--latency`` output is parsed into p50/p75/p90/p99, requests/s and non-2xx counts."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LUA = r"""
local entries = {}
local i = 0

init = function(args)
  -- one request a line: "<bearer token> <path>" (each line its own user)
  for line in io.lines(args[1]) do
    local token, path = string.match(line, "^(%S+) (%S+)$")
    if token then entries[#entries + 1] = {token, path} end
  end
  -- threads start at different places of the list, so they do not read the same rows in step
  i = math.random(#entries)
end

request = function()
  i = i % #entries + 1
  return wrk.format("GET", entries[i][2], {["Authorization"] = "Bearer " .. entries[i][1],
                                           ["Accept"] = "application/json"})
end

-- Status counts per thread, and the first failing answer, for the summary below.
statuses = {}
failure = ""
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 300 and failure == "" then
    failure = status .. " " .. string.sub(body or "", 1, 300)
  end
end

local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

done = function(summary, latency, requests)
  local total, shown = {}, false
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
    local f = thread:get("failure")
    if f ~= "" and not shown then
      io.write("FAILURE " .. string.gsub(f, "\n", " ") .. "\n")
      shown = true
    end
  end
  for status, count in pairs(total) do
    io.write("STATUS " .. status .. " " .. count .. "\n")
  end
end
"""

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ensure_wrk() -> str:
    """The wrk binary; installed from the OS packages (scripts/common.sh ensure_wrk) if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/common.sh" && ensure_wrk'],
                   check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed")
    return found


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse(output: str) -> dict:
    """wrk --latency output -> {p50_ms, p75_ms, p90_ms, p99_ms, requests, seconds, rps,
    non_2xx, socket_errors}."""
    result: dict = {"non_2xx": 0, "socket_errors": {}}
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.M):
        result[f"p{pct}_ms"] = round(_ms(value), 3)
    match = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    if match:
        result["requests"] = int(match.group(1))
        result["seconds"] = round(_ms(match.group(2)) / 1000, 2)
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match:
        result["rps"] = round(float(match.group(1)), 1)
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if match:
        result["non_2xx"] = int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      output)
    if match:
        result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                           map(int, match.groups()), strict=True))
    result["statuses"] = {int(code): int(n) for code, n in
                          re.findall(r"^STATUS (\d+) (\d+)$", output, re.M)}
    match = re.search(r"^FAILURE (.*)$", output, re.M)
    if match:
        result["first_failure"] = match.group(1)[:400]
    if "p50_ms" not in result or "rps" not in result:
        raise ValueError("unexpected wrk output:\n" + output)
    return result


def run(base: str, requests: list[tuple[str, str]], *, duration: int, connections: int,
        threads: int = 2, timeout: int = 10) -> dict:
    """wrk over ``requests`` ((token, path) pairs) for ``duration`` seconds; the parsed figures
    plus wrk's own text."""
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="crm-wrk-") as tmp:
        script, listing = Path(tmp) / "rotate.lua", Path(tmp) / "paths.txt"
        script.write_text(LUA)
        listing.write_text("".join(f"{token} {path}\n" for token, path in requests))
        completed = subprocess.run(
            [binary, f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout}s",
             "--latency", "-s", str(script), base, "--", str(listing)],
            capture_output=True, text=True, timeout=duration + 60)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr}")
    result = parse(completed.stdout)
    result["wrk_output"] = completed.stdout
    return result
