"""cluster.yaml passes Ray's own cluster-config validation (what `ray up` runs first); no cloud is reached."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def _load() -> dict[str, Any]:
    data = yaml.safe_load(CLUSTER_YAML.read_text())
    assert isinstance(data, dict)
    return data


def _prepared(config: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged and validated the way `ray up` does before it calls the cloud."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared: dict[str, Any] = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_ray_validates_cluster_yaml() -> None:
    config = _prepared(_load())
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head node must be CPU-only"
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    cpu = [n for n, t in types.items() if n != config["head_node_type"] and t["resources"].get("GPU", 0) == 0]
    assert len(gpu) == 1 and gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 2, "autoscaling GPU group"
    assert len(cpu) == 1, "one CPU-only preprocessing group"


def test_setup_commands_install_the_project_with_the_right_constraints() -> None:
    config = _load()
    types = config["available_node_types"]
    for name, node in types.items():
        if name == config["head_node_type"]:
            commands = " ".join(config["setup_commands"] + config["head_setup_commands"])
        else:
            commands = " ".join(node["worker_setup_commands"])  # overrides the global ones
        want = "constraints/gpu.txt" if node["resources"].get("GPU", 0) else "constraints/cpu.txt"
        other = "constraints/cpu.txt" if want.endswith("gpu.txt") else "constraints/gpu.txt"
        assert want in commands and other not in commands, name
        assert "-e ~/trustbatch" in commands, name
    assert config["file_mounts"]["~/trustbatch"] == "."


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["available_node_types"]["gpu_workers"].update(gpus=1),  # unknown key
        lambda c: c["available_node_types"]["gpu_workers"]["resources"].update(GPU=-1),
        lambda c: c.update(head_node_type="nope"),
    ],
)
def test_the_validator_really_checks(breakage: Any) -> None:
    import jsonschema

    config = _load()
    breakage(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        _prepared(config)
