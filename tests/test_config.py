"""Settings: merging, validation and precedence."""

from __future__ import annotations

from mmlsp.config import BUILTIN_MODEL, Settings, from_environment, merge


def test_defaults():
    settings = Settings()
    assert settings.model == BUILTIN_MODEL
    assert settings.device == "auto"
    assert settings.to_dict()["fimTemplate"] == "auto"


def test_merge_flat_and_nested():
    flat, errors = merge(Settings(), {"model": "Qwen/Qwen2.5-Coder-1.5B", "maxNewTokens": 32})
    assert errors == []
    assert flat.model == "Qwen/Qwen2.5-Coder-1.5B" and flat.max_new_tokens == 32
    nested, errors = merge(Settings(), {"mmlsp": {"device": "CPU"}})
    assert errors == [] and nested.device == "cpu"


def test_bad_values_keep_the_previous_value():
    base = Settings(max_new_tokens=10)
    merged, errors = merge(
        base,
        {
            "maxNewTokens": 0,
            "device": "tpu",
            "model": "",
            "fimTemplate": "gpt",
            "bogus": 1,
            "timeBudgetMs": True,
        },
    )
    assert merged == base
    assert len(errors) == 6
    assert any("maxNewTokens must be between 1 and 1024" in e and "keeping 10" in e for e in errors)
    assert any("unknown setting 'bogus'" in e for e in errors)


def test_none_means_unset_and_non_objects_are_rejected():
    assert merge(Settings(), {"model": None}) == (Settings(), [])
    assert merge(Settings(), None) == (Settings(), [])
    settings, errors = merge(Settings(), ["model"])
    assert settings == Settings() and "must be an object" in errors[0]


def test_environment():
    settings, errors = from_environment(
        {"MMLSP_MODEL": "/models/coder", "MMLSP_MAX_NEW_TOKENS": "12", "MMLSP_DEVICE": "gpu"}
    )
    assert settings.model == "/models/coder"
    assert settings.max_new_tokens == 12
    assert settings.device == "auto"
    assert any("device must be one of" in e for e in errors)


def test_every_setting_is_documented_in_the_readme_and_the_vscode_extension():
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \|", readme, re.M))
    manifest = json.loads((root / "clients/vscode/package.json").read_text(encoding="utf-8"))
    contributed = {
        key.removeprefix("mmlsp.") for key in manifest["contributes"]["configuration"]["properties"]
    }
    keys = set(Settings().to_dict())
    assert keys - documented == set(), "settings missing from README's table"
    assert keys - contributed == set(), "settings missing from the VS Code extension"


def test_each_setting_is_declared_once_with_a_description_and_a_camel_case_key():
    from mmlsp.config import SETTINGS

    assert list(SETTINGS) == list(Settings().to_dict())
    for key, (name, info) in SETTINGS.items():
        head, *rest = name.split("_")
        assert key == head + "".join(part.title() for part in rest)
        assert info.description and info.description.endswith("."), key


def test_only_the_users_own_launch_sets_code_execution_and_where_code_goes():
    # Issue 22: pinned, so that a change to these declarations is a deliberate one.
    from mmlsp.config import SETTINGS, USER_LEVEL_ONLY

    assert USER_LEVEL_ONLY == {
        "trustRemoteCode": "--trust-remote-code",
        "backend": "--backend",
        "baseUrl": "--base-url",
        "apiKeyEnv": "--api-key-env",
    }
    for key, value in (("trustRemoteCode", True), ("backend", "openai"), ("apiKeyEnv", "MMLSP_K")):
        settings, errors = merge(Settings(), {key: value})
        assert settings == Settings()
        assert errors == [
            f"{key} can only be set where you start mmlsp (the {USER_LEVEL_ONLY[key]} flag or "
            f"MMLSP_{SETTINGS[key][0].upper()}), not in editor or workspace "
            f"settings; keeping {Settings().to_dict()[key]!r}"
        ]
    # The same value as now is not a change: no message.
    assert merge(Settings(), {"backend": "LOCAL", "trustRemoteCode": "off"}) == (Settings(), [])


def test_values_are_read_as_before():
    settings, errors = merge(
        Settings(),
        {
            "maxNewTokens": 32.0,  # JSON has one kind of number
            "kvReuse": " Off ",
            "reviewOnSave": True,  # once an on/off switch
            "dtype": " BFloat16 ",
            "chatModel": "  ",
            "baseUrl": " http://gpu:8000/v1/ ",
        },
        user_level=True,
    )
    assert errors == []
    assert (settings.max_new_tokens, settings.kv_reuse, settings.review_on_save) == (
        32,
        False,
        "on",
    )
    assert (settings.dtype, settings.chat_model, settings.base_url) == (
        "bfloat16",
        "",
        "http://gpu:8000/v1",
    )
    wrong_kind = {"maxNewTokens": "12", "typeahead": 1, "model": 3, "prefixTokens": 20.5}
    settings, errors = merge(Settings(), wrong_kind)
    assert settings == Settings()
    assert errors == [
        "maxNewTokens must be an integer, got '12'; keeping 64",
        "typeahead must be true or false, got 1; keeping True",
        "model must be a non-empty string, got 3; keeping 'builtin:gemma-3-270m'",
        "prefixTokens must be an integer, got 20.5; keeping 1500",
    ]
    assert merge(Settings(), {"logLevel": " LOUD "})[1] == [
        "logLevel must be one of error, warning, info, debug, got 'loud'; keeping 'info'"
    ]
    # snake_case is the attribute's name, not a key an editor sends.
    assert merge(Settings(), {"max_new_tokens": 3})[1] == [
        "unknown setting 'max_new_tokens' ignored"
    ]


def test_every_instance_is_checked():
    import dataclasses

    import pytest
    from pydantic import ValidationError

    assert dataclasses.replace(Settings(), time_budget_ms=60_000).time_budget_ms == 60_000
    with pytest.raises(ValidationError):
        dataclasses.replace(Settings(), time_budget_ms=10)
    with pytest.raises(ValidationError):
        Settings(max_new_token=3)  # a misspelt name


def test_flags_whose_name_is_a_setting_set_it():
    from mmlsp.cli import build_parser, settings_from_args

    args = build_parser().parse_args(
        ["--device", "cpu", "--time-budget-ms", "900", "--decode-mode", "static", "--dtype", "int8"]
    )
    settings, errors = settings_from_args(args)
    assert errors == []
    assert (settings.device, settings.time_budget_ms) == ("cpu", 900)
    assert (settings.decode_mode, settings.dtype) == ("static", "int8")
    _, errors = settings_from_args(build_parser().parse_args(["--time-budget-ms", "1"]))
    assert errors == ["timeBudgetMs must be between 50 and 600000, got 1; keeping 4000"]


def test_the_readme_settings_table_has_the_declared_defaults():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)`", section, re.M))
    defaults = Settings().to_dict()
    assert len(rows) > 20, "no settings table under README's '## Settings'"
    for key, shown in rows.items():
        if key == "cacheDir":  # depends on the machine
            continue
        value = defaults[key]
        expected = str(value).lower() if isinstance(value, bool) else str(value) or '""'
        assert shown == expected, f"README says {key} defaults to {shown}, the server {value!r}"


def test_the_vscode_extension_contributes_each_setting_with_its_default_choices_and_range():
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "clients/vscode/e2e/check_settings.py"
    assert runpy.run_path(str(script))["main"]() == 0
