"""`batchjobs policy validate|diff|list`, run in-process through batchjobs.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchjobs import cli


@pytest.fixture(autouse=True)
def _only_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other commands are built by other people; these tests need only this one.
    monkeypatch.setattr(cli, "COMMANDS", ("policy",))


def test_validate_bundled_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "validate", "default"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("default.yaml: OK: trustbatch-default@1.2.0, 8 policies")


def test_validate_bad_pack_prints_problems_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    text = (Path(__file__).with_name("test_policy_base.yaml")).read_text()
    bad.write_text(text.replace("remove: 0.9", "remove: 1.9").replace("id: scams", "id: hate"))
    code = cli.main(["policy", "validate", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == (
        f"batchjobs policy: error: policy pack {bad} is invalid: 3 problems "
        "(nothing was run; fix the pack and check it with 'batchjobs policy validate')"
    )
    assert lines[1:] == [
        f"  {bad}: policies[0].thresholds.default.remove: 1.9 is outside [0, 1]",
        f"  {bad}: policies[1].id: duplicate policy id 'hate' (first at policies[0])",
        f"  {bad}: policies[2].thresholds.default.remove: 1.9 is outside [0, 1]",
    ]


def test_validate_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("pack_id: x\npolicies:\n  - id: a\n   title: b\n")
    assert cli.main(["policy", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err.splitlines()[1]
        == f"  {bad}: line 4, column 4: YAML syntax error: expected <block end>, but found '<block mapping start>'"
    )


def test_validate_with_model_heads(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "validate", "default", "--heads", "hate,scams"]) == 2
    assert "the model has no head 'personal_data'" in capsys.readouterr().err


def test_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "validate", "no-such-pack.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a file nor a bundled pack" in err


def test_diff_in_words_and_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "diff", "default", "election-eu"]) == 0
    out = capsys.readouterr().out
    assert "misinformation: in EU (27 markets) the demote threshold goes from 0.85 to 0.75" in out
    assert cli.main(["policy", "diff", "default", "election-eu", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["decision_relevant_policies"] == ["misinformation"]
    assert record["old"] == "trustbatch-default@1.2.0" and record["new"] == "trustbatch-default@1.3.0"
    assert len(record["changes"]) == 6


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "list"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["default", "election-eu"]


def test_schema_is_json_and_accepts_the_bundled_packs(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from pipelines.policy import bundled_packs

    assert cli.main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in [*bundled_packs().values(), Path(__file__).with_name("test_policy_base.yaml")]:
        doc = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc)) == []
    bad = {"pack_id": "x", "version": "1", "governance": {}, "policies": [], "extra": 1}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))
