"""Check that the extension contributes a setting for every server option.

Every field of mmlsp.config.Settings (as its camelCase key) must be an `mmlsp.<key>`
property in package.json, and every non-client `mmlsp.*` property must be a server
option (so nothing is sent that the server would reject).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

import mmlsp.config as config  # noqa: E402
from mmlsp.config import Settings  # noqa: E402

# The extension's own keys (package.json); trustRemoteCode becomes the server's
# environment, and backend, baseUrl and apiKeyEnv its flags (src/settings.ts FLAG_KEYS).
CLIENT_KEYS = {
    "serverPath",
    "serverArgs",
    "serverEnv",
    "languages",
    "trustRemoteCode",
    "backend",
    "baseUrl",
    "apiKeyEnv",
    "trace.server",
}


def main() -> int:
    package = json.loads((HERE.parent / "package.json").read_text(encoding="utf-8"))
    props = package["contributes"]["configuration"]["properties"]
    contributed = {name.removeprefix("mmlsp.") for name in props if name.startswith("mmlsp.")}
    server = set(Settings().to_dict())
    missing = sorted(server - contributed)
    extra = sorted(contributed - server - CLIENT_KEYS)
    if missing:
        print(f"package.json lacks settings for server options: {', '.join(missing)}")
    if extra:
        print(f"package.json has mmlsp.* settings the server does not know: {', '.join(extra)}")
    # Keys the server accepts only from its flags or environment must not be sent as
    # settings: the extension turns them into the server's environment instead.
    user_level = sorted(set(getattr(config, "USER_LEVEL_ONLY", ())) - CLIENT_KEYS)
    if user_level:
        names = ", ".join(user_level)
        print(f"server keys settable only by flag/env are sent as settings: {names}")
    # Defaults, choices and ranges must match the server's (cacheDir's default depends
    # on the machine: the extension leaves it empty, meaning "the server's default").
    drift = []
    defaults = Settings().to_dict()
    choices = getattr(config, "_CHOICES", {})
    ranges = getattr(config, "_RANGES", {})
    for key in sorted(server & contributed):
        prop = props[f"mmlsp.{key}"]
        if key != "cacheDir" and prop.get("default") != defaults[key]:
            drift.append(f"{key}: default {prop.get('default')!r}, server {defaults[key]!r}")
        if key in choices and list(prop.get("enum", [])) != list(choices[key]):
            drift.append(f"{key}: enum {prop.get('enum')}, server {list(choices[key])}")
        if key in ranges and (prop.get("minimum"), prop.get("maximum")) != tuple(ranges[key]):
            low, high = ranges[key]
            drift.append(
                f"{key}: range {prop.get('minimum')}..{prop.get('maximum')}, server {low}..{high}"
            )
    for line in drift:
        print(f"package.json differs from mmlsp.config: {line}")
    if missing or extra or user_level or drift:
        return 1
    print(f"settings: all {len(server)} server options are contributed, with the same defaults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
