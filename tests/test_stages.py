"""The stage shape: the ``paths`` section resolved once (smray.stages.layout), the chain's plan and
its one-line refusals, the command-line flags landing in ``paths``, a stage's state from real files,
and the import rules the package keeps (no private cross-module imports, Ray only in raysupport, no
import circle and at most ten levels)."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from smray.cli import build_parser, main
from smray.config import config_from_dict, load_config
from smray.errors import SmrayError
from smray.stages import twin as twin_stage
from smray.stages.chain import make_plan
from smray.stages.layout import layout

D = dt.date
PACKAGE = Path(__file__).resolve().parents[1] / "smray"


def cfg_of(**paths) -> object:
    return config_from_dict({"paths": paths, "reprocess": {"models": ["cnn", "svr", "physical"]}})


def test_every_location_defaults_below_root_and_local_paths_become_absolute(tmp_path: Path,
                                                                            monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    lay = layout(cfg_of(root="out/"))
    root = str(tmp_path / "out")
    assert (lay.root, lay.twin, lay.tb, lay.ref) == (root, f"{root}/twin", f"{root}/twin/amsr",
                                                     f"{root}/twin/era_interim")
    assert (lay.cube, lay.report, lay.experiment) == (f"{root}/cube.zarr", f"{root}/report", f"{root}/experiment")
    assert [lay.model_dir(k) for k in ("cnn", "svr")] == [f"{root}/models/cnn", f"{root}/models/svr"]
    assert lay.map_store("physical") == f"{root}/maps/physical.zarr"
    assert lay.scored() == [f"{root}/maps/{k}.zarr" for k in ("cnn", "svr", "physical")]
    s3 = layout(cfg_of(root="s3://bucket/run/", cube="s3://other/cube.zarr"))
    assert (s3.root, s3.cube, s3.twin) == ("s3://bucket/run", "s3://other/cube.zarr", "s3://bucket/run/twin")


def test_one_location_for_several_models_is_refused_naming_the_field() -> None:
    lay = layout(cfg_of(models="/runs/only-one"))
    with pytest.raises(SmrayError, match=r"^paths\.models: .*several models .*\{kind\}"):
        lay.model_dir("cnn")
    single = layout(config_from_dict({"paths": {"models": "/runs/only-one"}, "reprocess": {"models": ["svr"]}}))
    assert single.model_dir("svr") == "/runs/only-one"


def test_periods_default_from_the_twin_training_and_predict_periods() -> None:
    cfg = config_from_dict({"paths": {"root": "/r", "train": {"end": "2011-07-30"}},
                            "synth": {"start": "2011-07-01", "days": 35}})
    lay = layout(cfg)
    assert lay.ingest == (D(2011, 7, 1), D(2011, 8, 4))  # the twin's days
    assert lay.train == (D(2011, 7, 1), D(2011, 7, 30))
    assert lay.predict == (D(2011, 7, 31), D(2011, 8, 4)) == lay.evaluate
    assert lay.map_range("svr", 1) == (D(2011, 7, 31), D(2011, 7, 31))
    # a real archive: its days are not the twin's, they come from paths.ingest or the cube
    real = layout(config_from_dict({"paths": {"root": "/r", "tb": "s3://a/tb"}}))
    assert real.ingest is None
    assert layout(config_from_dict({"paths": {"root": "/r", "tb": "s3://a/tb"}}),
                  cube_span=(D(2003, 1, 1), D(2003, 12, 31))).ingest == (D(2003, 1, 1), D(2003, 12, 31))


def test_the_chain_refuses_what_it_cannot_resolve_in_one_line(tmp_path: Path) -> None:
    def refused(data: dict, **kw) -> str:
        with pytest.raises(SmrayError) as err:
            make_plan(config_from_dict(data), **kw)
        msg = str(err.value)
        assert "\n" not in msg
        return msg

    assert refused({}).startswith("paths.root: required value is missing")
    base = {"paths": {"root": str(tmp_path)}, "reprocess": {"stages": ["twin", "ingest", "train"]}}
    assert refused(base).startswith("paths.train.end: required value is missing")
    late = {**base, "paths": {"root": str(tmp_path), "train": {"end": "2012-01-01"}}}
    assert refused(late).startswith("paths.train.end: 2012-01-01 is outside the ingest period 2011-07-01..2011-08-04")
    assert refused(base, stages=["injest"]).startswith("--stages: unknown stage 'injest'")
    assert refused({**base, "paths": {"root": str(tmp_path), "train": {"end": "2011-07-30"}}},
                   force=["evaluate"]).startswith("--force: stage 'evaluate' is not among the stages run")
    with pytest.raises(SmrayError, match=r"^paths\.predict\.end: 2011-07-01 is before start 2011-07-05"):
        config_from_dict({"paths": {"predict": {"start": "2011-07-05", "end": "2011-07-01"}}})


@pytest.mark.parametrize("argv, where, expected", [
    (["synth", "--out", "/a/twin", "--days", "3"], "twin", "/a/twin"),
    (["ingest", "--tb", "s3://b/tb", "--ref", "s3://b/ref", "--out", "s3://b/cube.zarr", "--start", "2011-07-01",
      "--end", "2011-07-02"], "cube", "s3://b/cube.zarr"),
    (["train", "--cube", "s3://b/c.zarr", "--train-start", "2011-07-01", "--train-end", "2011-07-30", "--out",
      "s3://b/run"], "models", "s3://b/run"),
    (["predict", "--cube", "s3://b/c.zarr", "--model", "s3://b/run", "--out", "s3://b/m.zarr"], "maps",
     "s3://b/m.zarr"),
    (["evaluate", "--maps", "s3://b/m.zarr", "--cube", "s3://b/c.zarr", "--out", "s3://b/rep"], "report",
     "s3://b/rep"),
    (["experiment", "paper", "--cube", "s3://b/c.zarr", "--twin", "s3://b/t", "--out", "s3://b/x"], "experiment",
     "s3://b/x"),
    (["reprocess", "--config", "CFG", "--root", "s3://b/r"], "root", "s3://b/r"),
])
def test_location_flags_land_in_the_paths_section(tmp_path: Path, argv: list[str], where: str,
                                                  expected: str) -> None:
    from smray.cli import _overrides

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("paths: {report: s3://from/file}\n")
    argv = [str(cfg_file) if a == "CFG" else a for a in argv]
    args = build_parser().parse_args(argv)
    flags = {"synth": {"out": "paths.twin"}, "ingest": {"out": "paths.cube"}, "train": {"out": "paths.models"},
             "predict": {"out": "paths.maps"}, "evaluate": {"out": "paths.report"},
             "experiment": {"out": "paths.experiment"}, "reprocess": {"root": "paths.root"}}[argv[0]]
    cfg = load_config(str(cfg_file), _overrides(args, flags))
    assert getattr(cfg.paths, where) == expected
    assert cfg.paths.report == ("s3://b/rep" if argv[0] == "evaluate" else "s3://from/file")  # flags override


def test_twin_state_is_read_from_the_manifest(tmp_path: Path) -> None:
    cfg = config_from_dict({"paths": {"twin": str(tmp_path)}, "synth": {"days": 3, "seed": 1},
                            "grid": {"res": 2.0}})
    assert twin_stage.state(cfg).why == f"twin: no twin.json in {tmp_path}"
    manifest = {"synth": {"start": "2011-07-01", "days": 3, "seed": 1, "spinup_days": 60, "sensor": "AMSR-E"},
                "grid": cfg.grid.grid().to_dict()}
    (tmp_path / "twin.json").write_text(json.dumps(manifest))
    assert twin_stage.state(cfg).done
    other = config_from_dict({"paths": {"twin": str(tmp_path)}, "synth": {"days": 3, "seed": 2},
                              "grid": {"res": 2.0}})
    st = twin_stage.state(other)
    assert not st.done and st.why.endswith("holds a twin with other seed")
    # the synth command refuses to overwrite that other twin, before any work
    assert main(["synth", "--out", str(tmp_path), "--days", "3", "--seed", "2", "--res", "2"]) == 2


def test_a_stage_command_without_its_location_names_the_paths_field(capsys) -> None:
    assert main(["ingest", "--tb", "s3://b/tb", "--ref", "s3://b/ref", "--start", "2011-07-01",
                 "--end", "2011-07-02"]) == 2
    assert capsys.readouterr().err.strip().startswith("smray: error: paths.cube: required value is missing")


# --------------------------------------------------------------------------------------------
# The import rules of the package
# --------------------------------------------------------------------------------------------
def _imports() -> list[tuple[str, str, str | None]]:
    """(importing module, imported module, imported name) for every import between smray modules."""
    mods = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}
    out = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("smray"):
                for alias in node.names:
                    out.append((name, node.module, alias.name))
            elif isinstance(node, ast.Import):
                out += [(name, a.name, None) for a in node.names]
    return out


def test_no_module_imports_another_modules_private_name() -> None:
    private = [(src, mod, nm) for src, mod, nm in _imports()
               if mod.startswith("smray") and nm and nm.startswith("_") and not nm.startswith("__") and mod != src]
    assert private == []


def _module_graph() -> dict[str, set[str]]:
    """smray module → the smray modules it imports (``from smray.x import y`` counts as smray.x.y when
    that is a module, else smray.x), every import, lazy ones included."""
    mods = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
            for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for src, mod, name in _imports():
        target = f"{mod}.{name}" if name and f"{mod}.{name}" in mods else mod
        if target in mods and target != src:
            graph[src].add(target)
    return graph


def test_imports_go_one_way_in_at_most_ten_levels() -> None:
    """No import circle, and the longest chain of imports is at most 10 modules (issue 10's target)."""
    graph, depth, stack = _module_graph(), {}, []

    def level(m: str) -> int:
        assert m not in stack, f"import circle: {' -> '.join(stack[stack.index(m):] + [m])}"
        if m not in depth:
            stack.append(m)
            depth[m] = 1 + max((level(t) for t in graph[m]), default=0)
            stack.pop()
        return depth[m]

    deepest = max(graph, key=level)
    assert depth[deepest] <= 10, f"{deepest}: {depth[deepest]} levels"


def test_ray_is_imported_only_by_raysupport() -> None:
    users = sorted({src for src, mod, _ in _imports() if mod == "ray" or mod.startswith("ray.")})
    assert users == ["smray.raysupport"], users


def test_pipelines_forward_to_the_command_line() -> None:
    for path in sorted((PACKAGE.parent / "pipelines").glob("*.py")):
        if path.name == "__init__.py":
            continue
        text = path.read_text()
        assert "from smray.cli import main" in text, path.name
        code = [ln for ln in text.split('"""')[-1].splitlines() if ln.strip() and not ln.startswith(("import",
                                                                                                   "from"))]
        assert len(code) <= 5, (path.name, code)
    assert os.path.exists(PACKAGE / "stages" / "chain.py")
