"""The cluster files (cluster/): the Ray launcher YAML passes Ray's own schema and validation, the
KubeRay RayJob uses only RayJob fields and runs the reprocess job, every config they name exists and
loads, the mission config keeps its data on S3, the node types can hold what the config asks for,
and no file holds a credential."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from smray.config import load_config, to_dict

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
AWS = CLUSTER / "aws.yaml"
RAYJOB = CLUSTER / "kuberay-rayjob.yaml"
MISSION = CLUSTER / "configs" / "mission_2002_2011.yaml"
ENTRYPOINT = "python -m pipelines.reprocess --config cluster/configs/mission_2002_2011.yaml"

#: RayJobSpec's JSON fields (KubeRay ray-operator/apis/ray/v1/rayjob_types.go)
RAYJOB_SPEC_FIELDS = {
    "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
    "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML",
    "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus",
    "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend", "schedule",
}
#: RayClusterSpec / group spec fields used here (KubeRay raycluster_types.go)
RAYCLUSTER_SPEC_FIELDS = {"rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headGroupSpec",
                          "workerGroupSpecs", "headServiceAnnotations", "suspend", "managedBy", "gcsFaultToleranceOptions"}
WORKER_GROUP_FIELDS = {"groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds", "rayStartParams",
                       "template", "scaleStrategy", "suspend", "numOfHosts", "resources", "labels"}

CREDENTIAL_PATTERNS = [
    re.compile(r"aws_access_key_id", re.I),
    re.compile(r"aws_secret_access_key", re.I),
    re.compile(r"aws_session_token", re.I),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"^\s*(secret|key|password|token)\s*:\s*\S", re.I | re.M),
]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def aws() -> dict[str, Any]:
    return load_yaml(AWS)


@pytest.fixture(scope="module")
def rayjob() -> dict[str, Any]:
    return load_yaml(RAYJOB)


@pytest.fixture(scope="module")
def mission():
    return load_config(MISSION)


# --------------------------------------------------------------------------------------------
# The Ray cluster launcher YAML
# --------------------------------------------------------------------------------------------
def test_aws_yaml_passes_rays_schema_and_validation(aws: dict[str, Any]) -> None:
    import jsonschema  # a dependency of ray
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(aws, schema)
    validate_config(prepare_config(aws))  # what `ray up` runs: defaults merged, then checked
    bad = {**aws, "available_node_types": {**aws["available_node_types"], "gpu_worker": {"resources": {"GPU": 1}}}}
    with pytest.raises(jsonschema.ValidationError):  # the schema does bite (node_config is required)
        jsonschema.validate(bad, schema)


def test_aws_node_types(aws: dict[str, Any]) -> None:
    assert aws["provider"]["type"] == "aws" and aws["provider"]["region"]
    assert aws["auth"]["ssh_user"]
    types = aws["available_node_types"]
    assert set(types) >= {aws["head_node_type"], "cpu_worker", "gpu_worker"}
    assert types[aws["head_node_type"]]["resources"].get("CPU") == 0  # the driver only
    assert types["gpu_worker"]["resources"]["GPU"] >= 1 and "GPU" not in types["cpu_worker"]["resources"]
    for name, node in types.items():  # S3 through instance profiles, on every node
        assert node["node_config"].get("IamInstanceProfile"), f"{name}: no IamInstanceProfile"
        if name != aws["head_node_type"]:
            assert 0 <= node.get("min_workers", 0) <= node["max_workers"]
    assert sum(n.get("max_workers", 0) for n in types.values()) >= aws["max_workers"] > 0


def test_aws_setup_installs_the_repo_with_the_lock_pins(aws: dict[str, Any]) -> None:
    assert aws["file_mounts"]["~/smray"] == "."
    assert {"**/.venv", "**/.git"} <= set(aws["rsync_exclude"])
    ray_pin = version("ray")
    images = [aws["docker"]["image"], aws["available_node_types"]["gpu_worker"]["docker"]["worker_image"]]
    assert all(f":{ray_pin}-py311" in image for image in images), images  # Ray and Python of pyproject
    lock = (REPO / "requirements.lock").read_text()
    torch_pin = re.search(r"^torch==([\d.]+)", lock, re.M).group(1)
    for where, commands in [("head", aws["head_setup_commands"])] + [
            (name, node["worker_setup_commands"]) for name, node in aws["available_node_types"].items()
            if name != aws["head_node_type"]]:
        text = "\n".join(commands)
        assert "requirements.lock" in text and "-c ~/constraints.txt" in text, where
        assert re.search(r"pip install .*smray\[hdf4\]", text), where
        assert f"torch=={torch_pin}" in text, where
    assert "+cpu" not in "\n".join(aws["available_node_types"]["gpu_worker"]["worker_setup_commands"])
    start = " ".join(aws["head_start_ray_commands"] + aws["worker_start_ray_commands"])
    assert "--head" in start and "$RAY_HEAD_IP" in start and "RAY_AUTH_MODE=disabled" not in start


# --------------------------------------------------------------------------------------------
# The KubeRay RayJob
# --------------------------------------------------------------------------------------------
def _groups(rayjob: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = rayjob["spec"]["rayClusterSpec"]
    return {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec["workerGroupSpecs"]}}


def _pod_resources(group: dict[str, Any]) -> dict[str, float]:
    """What a group's pods give Ray: num-cpus/num-gpus/resources from rayStartParams, else the
    container limits (as KubeRay does)."""
    params = group.get("rayStartParams", {})
    limits = group["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
    out = {"CPU": float(params.get("num-cpus", limits.get("cpu", 0))),
           "GPU": float(params.get("num-gpus", limits.get("nvidia.com/gpu", 0)))}
    if "resources" in params:  # a JSON object inside a quoted string: '"{\"ingest\": 15}"'
        out.update({k: float(v) for k, v in json.loads(json.loads(params["resources"])).items()})
    return out


def test_rayjob_is_a_rayjob_running_the_reprocess_job(rayjob: dict[str, Any]) -> None:
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec = rayjob["spec"]
    assert set(spec) <= RAYJOB_SPEC_FIELDS, set(spec) - RAYJOB_SPEC_FIELDS
    assert spec["entrypoint"] == ENTRYPOINT
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert isinstance(runtime_env, dict) and runtime_env["working_dir"].startswith("s3://")
    assert all(isinstance(v, str) for v in runtime_env.get("env_vars", {}).values())
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= RAYCLUSTER_SPEC_FIELDS
    assert cluster["rayVersion"] == version("ray")
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP_FIELDS, group["groupName"]
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())  # KubeRay wants strings
    assert all(isinstance(v, str) for v in cluster["headGroupSpec"]["rayStartParams"].values())


def test_rayjob_groups_and_irsa(rayjob: dict[str, Any]) -> None:
    groups = _groups(rayjob)
    assert _pod_resources(groups["head"])["CPU"] == 0
    gpu = [g for g in groups.values() if _pod_resources(g)["GPU"] >= 1]
    cpu = [g for name, g in groups.items() if name != "head" and _pod_resources(g)["GPU"] == 0]
    assert gpu and cpu
    for g in gpu:
        limits = g["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) == int(_pod_resources(g)["GPU"])
    pods = [g["template"]["spec"] for g in groups.values()] + [rayjob["spec"]["submitterPodTemplate"]["spec"]]
    names = {p.get("serviceAccountName") for p in pods}
    assert names == {"smray-s3"}, names  # S3 through IRSA on every pod, no keys
    for pod in pods:
        for c in pod["containers"]:
            assert not any("AWS_" in e.get("name", "") and "KEY" in e.get("name", "") for e in c.get("env", []))


# --------------------------------------------------------------------------------------------
# The configs they run
# --------------------------------------------------------------------------------------------
def _referenced_configs() -> set[str]:
    found = set()
    for path in [AWS, RAYJOB, CLUSTER / "README.md"]:
        found |= set(re.findall(r"cluster/configs/[\w.-]+\.ya?ml", path.read_text()))
    return found


def test_every_referenced_config_exists_and_loads() -> None:
    refs = _referenced_configs()
    assert "cluster/configs/mission_2002_2011.yaml" in refs
    for ref in sorted(refs | {str(p.relative_to(REPO)) for p in (CLUSTER / "configs").glob("*.yaml")}):
        assert (REPO / ref).is_file(), f"{ref} is referenced but missing"
        load_config(REPO / ref)  # raises SmrayError naming the field when not valid


def test_entrypoint_module_exists_and_takes_config() -> None:
    module = ENTRYPOINT.split()[2]
    assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"{module} is missing"
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--config" in out.stdout


def _strings(value: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{where}[{i}]")]
    return [(where, value)] if isinstance(value, str) else []


def test_mission_data_is_on_s3_only(mission) -> None:
    locations = [(w, s) for w, s in _strings(load_yaml(MISSION)) if "://" in s or s.startswith(("/", "./", "~"))]
    assert len(locations) >= 4  # tb, ref, out, root at least
    assert all(s.startswith("s3://") for _, s in locations), [x for x in locations if not x[1].startswith("s3://")]
    from smray.stages.chain import make_plan

    lay = make_plan(mission).layout  # every URL the job will use, resolved as the job does
    urls = [lay.tb, lay.ref, lay.cube, lay.root, lay.report, *(lay.model_dir(k) for k in lay.trainable),
            *(lay.map_store(k) for k in lay.kinds)]
    assert all(u and u.startswith("s3://") for u in urls), urls
    assert mission.storage.s3.endpoint_url is None and mission.ray.address == "auto"
    assert lay.ingest is not None and tuple(d.isoformat() for d in lay.ingest) == ("2002-06-19", "2011-10-04")
    assert lay.ingest[0] <= lay.train[0] <= lay.train[1] <= lay.ingest[1]


def test_nodes_can_hold_what_the_mission_asks_for(mission, aws: dict[str, Any], rayjob: dict[str, Any]) -> None:
    launchers = {
        "aws.yaml": {name: {"resources": {k: float(v) for k, v in node["resources"].items()},
                            "max": node.get("max_workers", 1 if name == aws["head_node_type"] else 0)}
                     for name, node in aws["available_node_types"].items()},
        "kuberay": {name: {"resources": _pod_resources(g), "max": g.get("maxReplicas", 1)}
                    for name, g in _groups(rayjob).items()},
    }
    asked_custom = {}
    for section in ("ingest", "train", "predict"):  # the custom resources the config asks for
        asked_custom.update(getattr(getattr(mission, section), "task_resources", None) or {})
    for launcher, types in launchers.items():
        gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
        cpu_types = [t for t in types.values() if t["resources"].get("CPU", 0) > 0]
        if mission.train.use_gpu or mission.predict.use_gpu:
            assert gpu_types, f"{launcher}: use_gpu is true but no node type has a GPU"
        if mission.train.use_gpu:
            assert sum(t["max"] * t["resources"]["GPU"] for t in gpu_types) >= mission.train.workers, launcher
            assert max(t["resources"]["CPU"] for t in gpu_types) >= mission.train.cpus_per_worker, launcher
        if mission.predict.use_gpu:
            assert max(t["resources"]["CPU"] for t in gpu_types) >= mission.predict.actor_cpus, launcher
            assert sum(t["max"] * t["resources"]["GPU"] for t in gpu_types) >= (mission.predict.actors or 1)
        assert max(t["resources"]["CPU"] for t in cpu_types) >= max(mission.ingest.task_cpus,
                                                                    mission.predict.actor_cpus), launcher
        for name in asked_custom:
            assert any(t["resources"].get(name, 0) > 0 for t in types.values()), f"{launcher}: no {name!r}"


def test_no_credentials_in_cluster_files(mission) -> None:
    files = [p for p in CLUSTER.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        text = path.read_text()
        for pattern in CREDENTIAL_PATTERNS:
            assert not pattern.search(text), f"{path.relative_to(REPO)}: looks like a credential ({pattern.pattern})"
    assert mission.storage.s3.key is None and mission.storage.s3.secret is None
    assert "key" not in to_dict(mission, secrets=False)["storage"]["s3"]
    for pattern in CREDENTIAL_PATTERNS[:4]:  # the patterns do catch what they are for
        assert pattern.search("aws_access_key_id = x\naws_secret_access_key\naws_session_token\nAKIAABCDEFGHIJKLMNOP")
    assert CREDENTIAL_PATTERNS[4].search("storage:\n  s3:\n    secret: abc\n")


def _lock_pin(name: str) -> str:
    pins = dict(line.split("==", 1) for line in (REPO / "requirements.lock").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    return pins[name].strip()


def test_dockerfile_builds_the_image_the_rayjob_names_from_the_pinned_ray(rayjob: dict[str, Any]) -> None:
    """cluster/Dockerfile starts FROM the Ray image of the lock's Ray and the cluster files' Python, installs
    the lock's torch version, and the RayJob's images carry the same Ray and Python in their tags."""
    text = (REPO / "cluster/Dockerfile").read_text()
    ray, torch = _lock_pin("ray"), _lock_pin("torch")
    assert f"FROM rayproject/ray:{ray}-py311-${{VARIANT}}" in text
    assert f"torch=={torch}" in text and f"torch=={torch.split('+')[0]}'" in text  # CPU build and CUDA build
    assert "-c /tmp/constraints.txt" in text and "requirements.lock" in text
    images = {c["image"] for c in _containers(rayjob)}
    assert images and all(f"-ray{ray}-py311" in image for image in images), images
    assert any(image.endswith("-gpu") for image in images)  # the GPU group: --build-arg VARIANT=gpu
    assert "v1.3+" in (REPO / "cluster/kuberay-rayjob.yaml").read_text()  # backoffLimit and Ray 2.60


def _containers(value: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(value, dict):
        if "image" in value and "name" in value:
            found.append(value)
        for v in value.values():
            found += _containers(v)
    elif isinstance(value, list):
        for v in value:
            found += _containers(v)
    return found


def test_fake_autoscaler_file_is_an_autoscaling_cluster_from_zero() -> None:
    cfg = load_yaml(REPO / "cluster/fake-autoscaler.yaml")
    assert cfg["provider"]["type"] == "external"
    module, name = cfg["provider"]["module"].rsplit(".", 1)
    assert (REPO / "cluster" / f"{module}.py").exists()  # on PYTHONPATH=cluster, as the file's header says
    import importlib.util

    from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider

    spec = importlib.util.spec_from_file_location(module, REPO / "cluster" / f"{module}.py")
    found = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(found)
    assert issubclass(getattr(found, name), FakeMultiNodeProvider)
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}
    workers = [t for name, t in types.items() if name != cfg["head_node_type"]]
    assert workers and all(t["min_workers"] == 0 and t["max_workers"] >= 1 for t in workers)


def test_rehearsal_config_is_the_mission_period_over_a_region_with_land() -> None:
    """`make rehearsal`'s config: the AMSR-E mission's days, the mission's training and evaluation
    years, one 40° x 25° region that holds land and sea, AMSR-E names, and the Makefile runs it."""
    import datetime as dt

    from smray.grid import surface_fractions
    from smray.synth.layouts import sensor_years_note

    cfg = load_config(REPO / "smray/configs/rehearsal.yaml")
    paths = cfg.paths
    assert (paths.ingest.start, paths.ingest.end) == (dt.date(2002, 6, 19), dt.date(2011, 10, 4))
    assert (paths.predict.start, paths.predict.end) == (paths.ingest.start, paths.ingest.end)
    assert (paths.train.start, paths.train.end) == (dt.date(2003, 1, 1), dt.date(2008, 12, 31))
    assert (paths.evaluate.start, paths.evaluate.end) == (dt.date(2009, 1, 1), dt.date(2011, 10, 4))
    assert cfg.synth.start == paths.ingest.start and cfg.synth.days == 3395
    assert (paths.ingest.start + dt.timedelta(days=cfg.synth.days - 1)) == paths.ingest.end
    w, s, e, n = cfg.grid.bbox
    assert (e - w, n - s) == (40, 25) and cfg.grid.res == 0.25
    land = surface_fractions(cfg.grid.grid())["land"]
    assert 0.3 < (land >= 0.5).mean() < 0.9  # land and sea: coasts
    assert sensor_years_note(cfg.synth.tb_layout, cfg.synth.start, paths.ingest.end) is None and cfg.synth.gzip
    assert "smray reprocess --config smray/configs/rehearsal.yaml" in (REPO / "Makefile").read_text()
