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
