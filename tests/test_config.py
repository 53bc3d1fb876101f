"""Config loading: tags, anchors, includes, overrides and the located errors."""
import math
import os

import pytest

from distillkit.config import load_config, load_yaml_file
from distillkit.errors import ConfigError
from distillkit.utils import resolve_tags

MINIMAL = """
datasets:
  d:
    type: 'Digits'
    splits:
      train: {dataset_id: 'd/train', params: {split: 'train', image_size: 8}}
models:
  student_model: {name: 'cifar_resnet8', params: {num_classes: 10}, ckpt: }
train:
  num_epochs: 1
  train_data_loader: {dataset_id: 'd/train', batch_size: 8}
  optimizer: {type: 'SGD', params: {lr: 0.1}}
  criterion: {type: 'CrossEntropyLoss'}
"""


def test_join_pathjoin_and_anchors(write_yaml):
    path = write_yaml("""
        name: &name 'imagenet'
        root: &root '/data'
        id: !join [*name, '/train']
        joined: !pathjoin [*root, 'train']
        number: !join ['lr', 0.1]
        reused: *name
    """)
    data, lines = load_yaml_file(path)
    assert data == {"name": "imagenet", "root": "/data", "id": "imagenet/train", "joined": "/data/train",
                    "number": "lr0.1", "reused": "imagenet"}
    assert lines["id"] == 4


def test_import_get_and_import_call(write_yaml):
    path = write_yaml("""
        fn: !import_get {key: 'math.sqrt'}
        short: !import_get 'os.path.join'
        module: !import_get 'math'
        value: !import_call {key: 'math.pow', init: {args: [2, 10]}}
        kw: !import_call {key: 'collections.OrderedDict', init: {kwargs: {a: 1}}}
    """)
    data, _ = load_yaml_file(path)
    assert data["value"] == {"key": "math.pow", "init": {"args": [2, 10]}}  # built where it is used, not when read
    data = resolve_tags(data)
    assert data["fn"] is math.sqrt and data["short"] is os.path.join and data["module"] is math
    assert data["value"] == 1024.0 and data["kw"] == {"a": 1}


def test_import_get_failure_names_line(write_yaml):
    path = write_yaml("""
        a: 1
        fn: !import_get 'math.no_such_function'
    """)
    with pytest.raises(ConfigError) as info:
        load_yaml_file(path)
    assert "line 3" in str(info.value) and "math.no_such_function" in str(info.value) and path in str(info.value)


def test_include_is_relative_to_the_including_file(write_yaml):
    write_yaml("x: 1\ny: [a, b]\n", name="part.yaml")
    path = write_yaml("inc: !include part.yaml\nz: 2\n")
    assert load_yaml_file(path)[0] == {"inc": {"x": 1, "y": ["a", "b"]}, "z": 2}


def test_yaml_syntax_error_names_file_and_line(write_yaml):
    path = write_yaml("train:\n  num_epochs: 3\n  optimizer: [unclosed\n  lr: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert path in text and "YAML syntax error" in text and "line " in text


def test_overrides_parse_yaml_values_and_create_keys(write_yaml):
    config = load_config(write_yaml(MINIMAL), ["train.num_epochs=3", "train.optimizer.params.lr=0.5",
                                               "train.amp.enabled=true", "models.student_model.params.width=2"])
    assert config["train"]["num_epochs"] == 3 and config["train"]["optimizer"]["params"]["lr"] == 0.5
    assert config["train"]["amp"] == {"enabled": True}
    assert config["models"]["student_model"]["params"] == {"num_classes": 10, "width": 2}


def test_override_typo_is_refused_with_nearest_key(write_yaml):
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(MINIMAL), ["train.num_epoch=3"])
    assert "num_epochs" in str(info.value) and "train.num_epoch" in str(info.value)


def test_override_without_equals_is_refused(write_yaml):
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(write_yaml(MINIMAL), ["train.num_epochs"])


@pytest.mark.parametrize("edit, key_path, words", [
    (("  optimizer: {type: 'SGD', params: {lr: 0.1}}\n", ""), "train.optimizer", "required key 'optimizer'"),
    (("num_epochs: 1", "num_epochs: 'ten'"), "train.num_epochs", "expected a int"),
    (("num_epochs: 1", "num_epoch: 1"), "train.num_epochs", "num_epoch"),
    (("batch_size: 8", "batch_size: true"), "train.train_data_loader.batch_size", "expected a int"),
    (("models:\n  student_model:", "models:\n  studnet_model:"), "models", "student_model"),
])
def test_structural_errors_name_file_line_and_key(write_yaml, edit, key_path, words):
    path = write_yaml(MINIMAL.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert path in text and f"'{key_path}" in text and words in text and "line " in text


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/no/such/config.yaml")


def test_1x_tags_build_where_used_and_an_alias_is_built_once(write_yaml):
    path = write_yaml("""
        pair: !import_call {key: 'builtins.divmod', init: {args: [17, 5]}}
        second: !access_by_index_or_key {data: !import_call {key: 'builtins.divmod', init: {args: [17, 5]}},
                                         index_or_key: 1}
        upper: !call_method {obj: 'abc', method_name: 'upper'}
        named: !setattr [!import_call {key: 'argparse.Namespace'}, 'lr', 0.1]
        shared: &one !import_call {key: 'builtins.object'}
        again: *one
    """)
    data = resolve_tags(load_yaml_file(path)[0])
    assert data["pair"] == (3, 2) and data["second"] == 2 and data["upper"] == "ABC" and data["named"].lr == 0.1
    assert data["shared"] is data["again"]
