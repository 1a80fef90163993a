"""The operator catalogue as a library: built-in contents (spec §9), framework lookup (§9.3), file loading rules."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tione_server.catalogue import POSTPAID, PREPAID, Capacity, Catalogue, Limits

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load(tmp_path: Path, text: str) -> Catalogue:
    path = tmp_path / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    return Catalogue.load(path)


def test_catalogue_default_instance_types_match_spec_units() -> None:
    cat = Catalogue.default()
    assert len(cat.instance_types) == 22
    medium2 = cat.instance_types["TI.S6.MEDIUM2.POST"]
    assert (medium2.cpu, medium2.memory, medium2.gpu, medium2.gpu_type, medium2.alias) == (2000, 2048, 0, "", "2C2G")
    assert cat.instance_types["TI.S.MEDIUM.POST"].price == 70
    v100 = cat.instance_types["TI.GN10.2XLARGE40.POST"]
    assert (v100.cpu, v100.memory, v100.gpu, v100.gpu_type) == (8000, 40960, 100, "V100")
    assert (v100.alias, v100.spec_alias, v100.price) == ("8C40G V100*1", "8核40GB V100*1", 2000)
    assert v100.spec_id == "sv_tio_platform_cloud_post_gpu_8c40g_1v100"
    assert cat.instance_types["TI.GN7.LARGE20.POST"].alias == "4C20G T4*1/4"
    assert cat.instance_types["TI.GN7.2XLARGE40.POST"].alias == "10C40G T4*1/2"
    assert all(t.charge_type == POSTPAID and t.available for t in cat.instance_types.values())
    assert all(t.charge_type == PREPAID for t in cat.prepaid_types.values())


def test_catalogue_default_groups_and_capacity() -> None:
    cat = Catalogue.default()
    assert cat.resource_groups
    for group_id, group in cat.resource_groups.items():
        assert re.fullmatch(r"ersg-[a-z0-9]{8}", group_id)
        assert group.nodes
        for node in group.nodes:
            assert node.spec_name in cat.prepaid_types
            spec = cat.prepaid_types[node.spec_name]
            assert (node.cpu, node.memory, node.gpu) == (spec.cpu, spec.memory, spec.gpu)
    assert cat.capacity.cpu == (os.cpu_count() or 1) * 1000
    assert cat.capacity.memory > 0
    assert cat.capacity.gpu == 0


@pytest.mark.parametrize(
    ("name", "version", "environment", "expected"),
    [
        ("PYTORCH", "1.9", "torch1.9-py3.8-cuda11.1-gpu", "torch1.9-py3.8-cuda11.1-gpu"),
        ("PYTORCH", "", "torch1.9-py3.8-cuda11.1-gpu", "torch1.9-py3.8-cuda11.1-gpu"),
        ("TENSORFLOW", "", "tf2.4-py3.8-cuda11.1-gpu", "tf2.4-py3.8-cuda11.1-gpu"),
        ("TENSORFLOW", "1.15", "", "tf1.15-py3.7-cpu"),
        ("PYSPARK", "2.4.5", "spark2.4.5-py3.6-cpu", "spark2.4.5-py3.6-cpu"),
        ("PYTORCH", "1.8", "torch1.9-py3.8-cuda11.1-gpu", None),
        ("TENSORFLOW", "", "torch1.9-py3.8-cuda11.1-gpu", None),
        ("PYTORCH", "", "", None),
        ("MXNET", "1.9", "", None),
    ],
)
def test_catalogue_framework_lookup(name: str, version: str, environment: str, expected: str | None) -> None:
    fw = Catalogue.default().framework(name, version, environment)
    assert (fw.environment if fw else None) == expected


def test_catalogue_framework_modes_and_images() -> None:
    cat = Catalogue.default()
    torch = cat.framework("PYTORCH", "1.9", "torch1.9-py3.8-cuda11.1-gpu")
    assert torch is not None
    assert torch.modes == ("DDP", "MPI", "HOROVOD")
    assert torch.image_url
    spark = cat.framework("SPARK", "2.4.5", "spark2.4.5-cpu")
    assert spark is not None
    assert spark.modes == ("SPARK",)


def test_catalogue_file_sections_replace_only_themselves(tmp_path: Path) -> None:
    cat = _load(tmp_path, "[capacity]\ncpu = 3000\nmemory = 4096\ngpu = 100\n")
    assert cat.capacity == Capacity(cpu=3000, memory=4096, gpu=100)
    default = Catalogue.default()
    assert cat.instance_types == default.instance_types
    assert cat.resource_groups == default.resource_groups
    assert cat.frameworks == default.frameworks


def test_catalogue_file_images_and_discount(tmp_path: Path) -> None:
    cat = _load(tmp_path, 'discount = 50\n[images]\n"tf2.4-py3.8-cpu" = "registry.local/tf:2.4"\n')
    tf = cat.framework("TENSORFLOW", "2.4", "tf2.4-py3.8-cpu")
    assert tf is not None
    assert tf.image_url == "registry.local/tf:2.4"
    assert cat.real_price(cat.instance_types["TI.S.MEDIUM.POST"], 3) == 105


def test_catalogue_example_file_loads() -> None:
    cat = Catalogue.load(DOCS / "catalogue.example.toml")
    assert "TI.S.MEDIUM.POST" in cat.instance_types
    assert cat.capacity == Capacity(cpu=16000, memory=65536, gpu=200)
    assert cat.limits == Limits(max_pods_per_task=32, max_active_tasks=100)


def test_catalogue_limits_default_and_file(tmp_path: Path) -> None:
    """Issue 7 B4: 32 pods per task and 100 active tasks per account unless `[limits]` says otherwise."""
    assert Catalogue.default().limits == Limits(max_pods_per_task=32, max_active_tasks=100)
    raised = _load(tmp_path, "[limits]\nmax_pods_per_task = 500\n")
    assert raised.limits == Limits(max_pods_per_task=500, max_active_tasks=100)
    assert raised.instance_types == Catalogue.default().instance_types


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[[frameworks]]\nname = 'X'\nversion = '1'\nenvironment = 'e'\nmodes = []\n", "frameworks[0].modes"),
        ("[images]\n'no-such-env' = 'x'\n", "images.no-such-env"),
        ("[[instance_types]]\nname='A'\ncpu=1000\nmemory=1\nprice=1\ngpu=100\n", "instance_types[0].gpu_type"),
        ("[[instance_types]]\nname = 'A'\ncpu = 1000\nmemory = 1\nprice = -1\n", "instance_types[0].price"),
        ("[[instance_types]]\nname = 'A'\ncpu = 1000\nmemory = 1\nprice = 1\n"
         "[[instance_types]]\nname = 'A'\ncpu = 1000\nmemory = 1\nprice = 1\n", "instance_types[1].name"),
        ("[[resource_groups]]\nid = 'ersg-x'\n[[resource_groups.nodes]]\nid = 'n'\ncpu = 1\nmemory = 1\n"
         "status = 'UP'\n", "resource_groups[0].nodes[0].status"),
        ("[[resource_groups]]\nid = 'ersg-x'\n[[resource_groups.nodes]]\nid = 'n'\n",
         "resource_groups[0].nodes[0].cpu"),
        ("[[resource_groups]]\nid = 'ersg-x'\ntags = { team = 1 }\n", "resource_groups[0].tags.team"),
        ("discount = 101\n", "discount"),
        ("capacity = 3\n", "capacity"),
        ("[limits]\nmax_pods_per_task = 0\n", "limits.max_pods_per_task"),
        ("[limits]\nmax_active_tasks = '5'\n", "limits.max_active_tasks"),
        ("[limits]\nmax_tasks = 5\n", "limits.max_tasks"),
        # Issue 8 item 6: keys inside tables of values, arrays of tables and enums, as the file writes them.
        ("[prices]\n'TI.S.MEDIUM.POST' = -1\n", "prices.TI.S.MEDIUM.POST"),
        ("[images]\n'tf2.4-py3.8-cpu' = 3\n", "images.tf2.4-py3.8-cpu"),
        ("instance_types = [3]\n", "instance_types[0]"),
        ("[[instance_types]]\nname = 'A'\ncpu = 1000\nmemory = 1\nprice = 1\ncharge_type = 'PREPAID'\n",
         "instance_types[0].charge_type"),
        ("[[prepaid_types]]\nname = 'A'\ncpu = 1000\nmemory = 1\nrdma = 'yes'\n", "prepaid_types[0].rdma"),
        ("[[resource_groups]]\nid = 'ersg-x'\n[[resource_groups.nodes]]\nid = 'n'\ncpu = 1\nmemory = 1\n"
         "auto_renew_flag = 'NEVER'\n", "resource_groups[0].nodes[0].auto_renew_flag"),
        ("[[resource_groups]]\nid = 'ersg-x'\n[[resource_groups.nodes]]\nid = 'n'\ncpu = 1\nmemory = 1\n"
         "colour = 'red'\n", "resource_groups[0].nodes[0].colour"),
        ("[[resource_groups]]\nid = 'ersg-x'\n[[resource_groups.nodes]]\nid = 'n'\ncpu = 1\nmemory = 1\n"
         "[[resource_groups]]\nid = 'ersg-y'\n[[resource_groups.nodes]]\nid = 'n'\ncpu = 1\nmemory = 1\n",
         "resource_groups[1].nodes[0].id"),
    ],
)  # fmt: skip
def test_catalogue_bad_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"`{key}`")):
        _load(tmp_path, text)


def test_catalogue_file_defaults_that_depend_on_other_keys(tmp_path: Path) -> None:
    """A node takes its spec's sizes and its id as name; an RDMA type lists the RDMA feature (issue 8 item 6)."""
    cat = _load(
        tmp_path,
        "[[prepaid_types]]\nname = 'P'\ncpu = 8000\nmemory = 16384\ngpu = 100\ngpu_type = 'T4'\nrdma = true\n"
        "[[resource_groups]]\nid = 'ersg-x'\ntags = { b = '2', a = '1' }\n"
        "[[resource_groups.nodes]]\nid = 'eins-1'\nspec_name = 'P'\nmemory = 8192\n",
    )
    spec = cat.prepaid_types["P"]
    assert (spec.charge_type, spec.price, spec.features) == (PREPAID, 0, ("COS", "CFS", "TurboCFS", "RDMA"))
    assert spec.spec_id == "sv_tio_platform_cloud_pre_gpu_8c16g_1t4"
    group = cat.resource_groups["ersg-x"]
    assert (group.name, group.tags) == ("ersg-x", (("b", "2"), ("a", "1")))
    (node,) = group.nodes
    assert (node.name, node.cpu, node.memory, node.gpu, node.gpu_type, node.rdma) == (
        "eins-1",
        8000,
        8192,
        100,
        "T4",
        True,
    )


def test_catalogue_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        Catalogue.load(tmp_path / "absent.toml")
