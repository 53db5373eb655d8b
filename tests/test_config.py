"""The config tree: YAML round trip, and one line naming the field for every way a config can be wrong."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from smray.config import (Config, GridConfig, S3Config, SynthConfig, _build, config_from_dict, dump_config,
                          load_config, to_dict)
from smray.errors import SmrayError

FULL = """\
storage:
  s3:
    endpoint_url: http://127.0.0.1:9000
    region: eu-central-1
    key: AKIDCONFIGKEY
    secret: config-secret-value
    anon: false
    connect_timeout_s: 2
    read_timeout_s: 30.5
    max_attempts: 6
grid:
  res: 1.0
  bbox: [-10, 35, 30.5, 60]
paths:
  twin: memory://twin
  train: {start: 2011-07-01, end: 2011-07-30}
synth:
  start: 2011-07-15
  days: 10
  seed: 42
  spinup_days: 0
  overwrite: true
  max_in_flight: 2
  sensor: AMSR2
ray:
  address: auto
  num_cpus: 4
"""


def _write(tmp_path: Path, text: str, name: str = "smray.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(SmrayError) as err:
        fn(*args, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg and msg == msg.strip()
    return msg


# --------------------------------------------------------------------------------------------
# Loading and round trip
# --------------------------------------------------------------------------------------------
def test_defaults():
    assert load_config() == Config() == config_from_dict({}) == config_from_dict(None)


def test_full_file_is_read(tmp_path):
    cfg = load_config(_write(tmp_path, FULL))
    assert cfg.grid == GridConfig(res=1.0, bbox=(-10.0, 35.0, 30.5, 60.0))
    assert cfg.synth.start == dt.date(2011, 7, 15) and cfg.synth.days == 10 and cfg.synth.overwrite is True
    assert cfg.storage.s3.key == "AKIDCONFIGKEY" and cfg.storage.s3.connect_timeout_s == 2.0
    assert cfg.ray.address == "auto" and cfg.ray.num_cpus == 4


def test_round_trip_load_dump_load(tmp_path):
    cfg = load_config(_write(tmp_path, FULL))
    text = dump_config(cfg)
    again = load_config(_write(tmp_path, text, "dumped.yaml"))
    no_secrets = dataclasses.replace(cfg.storage.s3, key=None, secret=None)
    assert again == dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, s3=no_secrets))
    assert dump_config(again) == text
    assert config_from_dict(yaml.safe_load(text)) == again


def test_round_trip_defaults(tmp_path):
    assert load_config(_write(tmp_path, dump_config(Config()))) == Config()


def test_empty_file_means_defaults(tmp_path):
    assert load_config(_write(tmp_path, "")) == Config()
    assert load_config(_write(tmp_path, "# only a comment\n")) == Config()
    assert load_config(_write(tmp_path, "synth:\n")) == Config()


def test_overrides_replace_file_values(tmp_path):
    cfg = load_config(_write(tmp_path, FULL), overrides={"synth": {"days": 3}, "grid": {"bbox": "0,0,10,10"}})
    assert cfg.synth.days == 3 and cfg.synth.seed == 42  # merged, not replaced section-wide
    assert cfg.grid.bbox == (0.0, 0.0, 10.0, 10.0) and cfg.grid.res == 1.0
    assert load_config(None, {"ray": {"num_cpus": 2}}).ray.num_cpus == 2


def test_to_dict_secrets_only_on_request():
    cfg = config_from_dict({"storage": {"s3": {"key": "K", "secret": "S"}}})
    assert "key" not in to_dict(cfg)["storage"]["s3"] and "secret" not in to_dict(cfg)["storage"]["s3"]
    assert to_dict(cfg, secrets=True)["storage"]["s3"]["secret"] == "S"


def test_dates_accept_date_objects_and_strings():
    assert config_from_dict({"synth": {"start": dt.date(2012, 1, 2)}}).synth.start == dt.date(2012, 1, 2)
    assert config_from_dict({"synth": {"start": "2012-01-02"}}).synth.start == dt.date(2012, 1, 2)
    assert config_from_dict({"synth": {"start": dt.datetime(2012, 1, 2, 5)}}).synth.start == dt.date(2012, 1, 2)


# --------------------------------------------------------------------------------------------
# Every failure: one line, naming the field
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, field_name, words", [
    ({"synthh": {}}, "synthh", "unknown key"),
    ({"synth": {"dayz": 3}}, "synth.dayz", "unknown key"),
    ({"storage": {"s3": {"endpoint": "x"}}}, "storage.s3.endpoint", "unknown key"),
    ({"synth": {"days": "ten"}}, "synth.days", "expected an integer, got 'ten'"),
    ({"synth": {"days": 2.5}}, "synth.days", "expected an integer"),
    ({"synth": {"overwrite": "maybe"}}, "synth.overwrite", "true/false"),
    ({"synth": {"days": True}}, "synth.days", "expected an integer"),
    ({"grid": {"res": [1]}}, "grid.res", "expected a number"),
    ({"grid": {"res": "coarse"}}, "grid.res", "expected a number"),
    ({"grid": {"res": 0.7}}, "grid.res", "does not divide 180"),
    ({"grid": {"res": 0}}, "grid.res", "positive"),
    ({"grid": {"res": "nan"}}, "grid.res", "positive"),
    ({"grid": {"bbox": [10, 0, 5, 20]}}, "grid.bbox", "W,S,E,N"),
    ({"grid": {"bbox": [0, 95, 10, 100]}}, "grid.bbox", "W,S,E,N"),
    ({"grid": {"bbox": [0, 0, 10]}}, "grid.bbox", "expected 4 values"),
    ({"grid": {"bbox": "a,b,c,d"}}, "grid.bbox[0]", "expected a number"),
    ({"grid": {"bbox": 5}}, "grid.bbox", "expected a list"),
    ({"synth": {"start": "2011-02-30"}}, "synth.start", "not a valid date"),
    ({"synth": {"start": "July 1st"}}, "synth.start", "not a valid date"),
    ({"synth": {"days": 0}}, "synth.days", ">= 1"),
    ({"synth": {"spinup_days": -1}}, "synth.spinup_days", ">= 0"),
    ({"synth": {"max_in_flight": 0}}, "synth.max_in_flight", ">= 1"),
    ({"synth": 5}, "synth", "expected a mapping"),
    ({"storage": {"s3": ["a"]}}, "storage.s3", "expected a mapping"),
    ({"ray": {"num_cpus": "four"}}, "ray.num_cpus", "expected an integer"),
    ({"train": {"day_order": "random"}}, "train.day_order", "shuffled or calendar"),
    ({"train": {"shuffle_buffer": -1}}, "train.shuffle_buffer", ">= 0"),
    ({"patches": {"val_block_fraction": 1.0}}, "patches.val_block_fraction", "0 < val_block_fraction < 1"),
    ({"patches": {"block_deg": -5}}, "patches.block_deg", "or 0 for the default"),
    ({"patches": {"split": "random", "val_day_every": -1}}, "patches.val_day_every", "must be 0"),
])
def test_bad_values_name_the_field(data, field_name, words):
    msg = _error(config_from_dict, data)
    assert msg.startswith(field_name + ":"), msg
    assert words in msg, msg


def test_unknown_key_lists_known_ones():
    msg = _error(config_from_dict, {"synth": {"dayz": 3}})
    assert "days" in msg and "seed" in msg


@pytest.mark.parametrize("text, field_name", [
    ("synth:\n  start: 2011-02-30\n", "synth.start"),  # YAML itself would raise a bare ValueError here
    ("synth:\n  dayz: 3\n", "synth.dayz"),
    ("grid:\n  res: 0.7\n", "grid.res"),
    ("synth:\n  days: ten\n", "synth.days"),
])
def test_file_errors_name_the_field(tmp_path, text, field_name):
    assert _error(load_config, _write(tmp_path, text)).startswith(field_name + ":")


def test_mistyped_secret_is_not_echoed():
    msg = _error(config_from_dict, {"storage": {"s3": {"secret": 12345678, "key": "AKIDOK"}}})
    assert msg.startswith("storage.s3.secret:") and "12345678" not in msg
    msg = _error(config_from_dict, {"storage": {"s3": {"key": ["AKIDLISTED"]}}})
    assert msg.startswith("storage.s3.key:") and "AKIDLISTED" not in msg


@dataclass(frozen=True)
class _Inner:
    name: str
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 0:
            raise SmrayError(f"count: must be >= 0, got {self.count}")
        if self.name == "boom":
            raise ValueError("name may not be boom")


@dataclass(frozen=True)
class _Outer:
    inner: _Inner
    label: str = "x"


def test_missing_required_value():
    assert _build(_Outer, {"inner": {"name": "n"}}, "") == _Outer(inner=_Inner(name="n"))
    assert _error(_build, _Outer, {"inner": {"count": 2}}, "").startswith("inner.name: required value is missing")
    assert _error(_build, _Outer, {}, "").startswith("inner: required value is missing")
    assert _error(_build, _Outer, {"inner": {}}, "top").startswith("top.inner.name:")


def test_validator_messages_are_made_absolute():
    # _Inner's validator names its field relative to itself ("count: …"); the loader places it
    assert _error(_build, _Outer, {"inner": {"name": "n", "count": -1}}, "").startswith("inner.count: must be")
    assert _error(_build, _Outer, {"inner": {"name": "n", "count": -1}}, "a.b").startswith("a.b.inner.count:")
    # a validator failing with a plain exception still gives one line naming the section
    assert _error(_build, _Outer, {"inner": {"name": "boom"}}, "top").startswith("top.inner:")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n", "0\n", "false\n"])
def test_non_mapping_yaml(tmp_path, text):
    path = _write(tmp_path, text)
    msg = _error(load_config, path)
    assert msg.startswith(str(path)) and "mapping" in msg


@pytest.mark.parametrize("text, line", [
    ("synth:\n  days: 3\n  seed: [1, 2\n", 4),
    ("grid:\n  res: 1\n bad indent: 2\n", 3),
    ("synth:\n\tdays: 3\n", 2),
])
def test_invalid_yaml_names_file_and_line(tmp_path, text, line):
    path = _write(tmp_path, text)
    msg = _error(load_config, path)
    assert msg.startswith(str(path)) and f"line {line}" in msg and "YAML" in msg


def test_unreadable_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    msg = _error(load_config, missing)
    assert msg.startswith(str(missing)) and "cannot read" in msg
    msg = _error(load_config, tmp_path)  # a directory
    assert msg.startswith(str(tmp_path)) and "cannot read" in msg
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage")
    msg = _error(load_config, binary)
    assert msg.startswith(str(binary)) and "cannot read" in msg


def test_sections_are_frozen_and_validated_directly():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.synth.days = 3  # type: ignore[misc]
    with pytest.raises(SmrayError, match="synth.days"):
        SynthConfig(days=0)
    with pytest.raises(SmrayError, match="res"):
        GridConfig(res=0.7)


def test_secrets_not_in_repr_or_dump():
    cfg = config_from_dict({"storage": {"s3": {"key": "AKIDREPR", "secret": "repr-secret"}}})
    for text in (repr(cfg), repr(cfg.storage.s3), dump_config(cfg)):
        assert "AKIDREPR" not in text and "repr-secret" not in text
    assert repr(S3Config(secret="x" * 20)).count("x" * 20) == 0


def test_task_resources_are_a_mapping_of_custom_resources() -> None:
    """ingest/predict.task_resources pin work to node types; CPU/GPU have their own settings."""
    cfg = config_from_dict({"ingest": {"task_resources": {"ingest": 1}},
                            "predict": {"task_resources": {"gpu_node": 0.5}}})
    assert cfg.ingest.task_resources == {"ingest": 1.0} and cfg.predict.task_resources == {"gpu_node": 0.5}
    assert config_from_dict({}).ingest.task_resources == {}
    for section, value, message in [("ingest", {"CPU": 1}, r"ingest\.task_resources\.CPU: set CPUs/GPUs"),
                                    ("ingest", {"x": 0}, r"ingest\.task_resources\.x: must be > 0"),
                                    ("ingest", [1], r"ingest\.task_resources: expected a mapping"),
                                    ("predict", {"x": "a"}, r"predict\.task_resources\.x: expected a number")]:
        with pytest.raises(SmrayError, match=message):
            config_from_dict({section: {"task_resources": value}})


def test_validation_is_honest_by_default_and_the_paper_split_is_labelled() -> None:
    """The default split holds out whole days and spatial blocks; a model's record and reports say
    which split chose it, from the config or its recorded dict (a record without ``split`` predates
    the blocked default, so it was random)."""
    from smray.config import PatchConfig, validation_label

    default = config_from_dict({}).patches
    assert default.split == "blocked" and default.val_day_every == 5 and default.block_deg == 0
    label = validation_label(default)
    assert label.startswith("blocked split: validation on held-out blocks (5°, or two patch widths on coarser "
                            "grids; 0.2 of the land blocks) and one day in 5 held out whole")
    assert label.endswith("; no validation pixel shares a place and day with training")
    assert validation_label(dataclasses.asdict(default)) == label
    no_days = validation_label(PatchConfig(val_day_every=0, block_deg=10.0))
    assert no_days.startswith("blocked split: validation on held-out blocks (10°; 0.2 of the land blocks); no")
    paper = validation_label(PatchConfig(split="random"))
    assert paper.startswith("random split (the paper's protocol)") and "optimistic" in paper
    assert validation_label({"per_day": 100}) == paper
