"""Mode names and options -> executors; the executor line syntax; clear errors for bad input."""

from __future__ import annotations

import distributed
import pytest

from nbexec.config.modes import executor_for, validate
from nbexec.config.options import LineError, format_line, parse_line
from nbexec.executors import LocalExecutor


@pytest.mark.parametrize(
    "line, mode, options",
    [
        ("local", "local", {}),
        ("threads -n 2", "threads", {"workers": 2}),
        ("processes --workers 3", "processes", {"workers": 3}),
        ("dask --address tcp://10.0.0.5:8786", "dask", {"address": "tcp://10.0.0.5:8786"}),
        ("dask -n 2 --threads-per-worker 1 --no-processes --memory-limit 1GiB", "dask",
         {"workers": 2, "threads_per_worker": 1, "processes": False, "memory_limit": "1GiB"}),
        ("dask --adapt 1 4 --timeout 2.5", "dask", {"adapt": (1, 4), "timeout": 2.5}),
        ("dask --cluster-class distributed.LocalCluster --cluster-kwargs '{\"n_workers\": 1}'", "dask",
         {"cluster_class": "distributed.LocalCluster", "cluster_kwargs": {"n_workers": 1}}),
        ("", None, {}),
    ],
)  # fmt: skip
def test_lines_parse_and_format_back(line, mode, options):
    assert parse_line(line) == (mode, options)
    if mode is not None:
        assert parse_line(format_line(mode, options)) == (mode, options)


@pytest.mark.parametrize(
    "line, message",
    [
        ("thread", "unknown mode 'thread'; valid modes: local, sync, threads, processes, dask"),
        ("threads -n two", "expected a whole number, got 'two'"),
        ("threads -n -1", "expected a number >= 0"),
        ("dask --cluster-kwargs '{bad'", "expected a JSON object"),
        ("dask --cluster-kwargs '[1]'", "expected a JSON object"),
        ("dask --adapt 1", "expected 2 arguments"),
        ("threads --frobnicate", "unrecognized arguments: --frobnicate"),
        ("dask --timeout 0", "seconds > 0"),
        ("threads 'unclosed", "cannot split"),
    ],
)  # fmt: skip
def test_bad_lines_name_the_problem(line, message):
    with pytest.raises(LineError) as info:
        parse_line(line)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "mode, options, message",
    [
        ("local", {"workers": 2}, "option 'workers' does not fit mode 'local'; 'local' accepts: no options"),
        ("threads", {"address": "tcp://x:1"}, "'threads' accepts: workers"),
        ("threads", {"workers": 0}, "workers must be a whole number >= 1"),
        ("dask", {"adapt": (3, 1)}, "adapt minimum 3 is larger than maximum 1"),
        ("dask", {"address": "tcp://x:1", "workers": 2}, "do not fit --address"),
        ("dask", {"memory_limit": "lots"}, "memory_limit must be a size"),
        ("dask", {"cluster_class": "os.system"}, "is not a distributed.deploy.Cluster subclass"),
        ("dask", {"cluster_class": "collections.OrderedDict"}, "is not a distributed.deploy.Cluster subclass"),
        ("dask", {"cluster_class": "no_such_module.Cluster"}, "is not a distributed.deploy.Cluster subclass"),
        ("dask", {"tls_ca_file": "/nonexistent"}, "TLS needs tls_ca_file, tls_cert and tls_key together"),
        ("dask", {"cluster_class": "distributed.SpecCluster", "threads_per_worker": 2},
         "configure a LocalCluster; for 'SpecCluster' pass them in cluster_kwargs"),
        ("gpu", {}, "unknown mode 'gpu'"),
        ("dask", {"bogus": 1}, "unknown option 'bogus'"),
    ],
)  # fmt: skip
def test_options_that_do_not_fit_are_errors(mode, options, message):
    with pytest.raises(ValueError) as info:
        validate(mode, options)
    assert message in str(info.value)
    with pytest.raises(ValueError):
        executor_for(mode, **options)


def test_executor_for_maps_modes_and_local_cluster_options():
    assert isinstance(executor_for("local"), LocalExecutor)
    threads = executor_for("threads", workers=3)
    assert (threads.scheduler, threads.dask_config) == ("threads", {"num_workers": 3})
    assert executor_for("sync").scheduler == "synchronous"
    dask = executor_for("dask", workers=2, threads_per_worker=1, processes=False, memory_limit="1GiB",
                        adapt=(1, 3), timeout=4)  # fmt: skip
    assert dask.cluster_kwargs["n_workers"] == 2
    assert dask.cluster_kwargs["threads_per_worker"] == 1
    assert dask.cluster_kwargs["processes"] is False
    assert dask.cluster_kwargs["memory_limit"] == "1GiB"
    assert dask.adapt_kwargs == {"minimum": 1, "maximum": 3}
    assert dask.client_kwargs["timeout"] == 4
    remote = executor_for("dask", address="tcp://127.0.0.1:8786")
    assert remote.address == "tcp://127.0.0.1:8786" and remote.cluster_class is None


def test_another_cluster_class_scales_to_workers():
    from distributed import SpecCluster

    executor = executor_for("dask", cluster_class="distributed.SpecCluster", workers=3,
                            cluster_kwargs={"workers": {}})  # fmt: skip
    assert executor.cluster_class is SpecCluster
    assert executor.cluster_kwargs == {"workers": {}}
    assert executor.scale == 3


class LocalClusterOfMine(distributed.LocalCluster):
    """A LocalCluster subclass a user names by its dotted name."""


def test_local_cluster_is_told_apart_the_same_by_name_and_class():
    from nbexec.executors._cluster_class import is_local_cluster, names_local_cluster

    mine = f"{__name__}.LocalClusterOfMine"
    for named in ("", "distributed.LocalCluster", "dask.distributed.LocalCluster", mine):
        assert is_local_cluster(named), named
    assert is_local_cluster(LocalClusterOfMine)
    assert not is_local_cluster("distributed.SpecCluster") and not is_local_cluster("no.Such")
    # only LocalCluster itself may be left out of an executor line; a subclass is named
    assert names_local_cluster(" distributed.LocalCluster ") and not names_local_cluster(mine)
    # a subclass takes the LocalCluster sizing options, by name as by class
    validate("dask", {"cluster_class": mine, "threads_per_worker": 1, "processes": False})


def test_one_option_table_says_what_each_mode_takes_to_the_checks_the_cli_and_the_panel():
    from nbexec.config.options import MODE_OPTIONS, MODES, OPTIONS
    from nbexec.frontends.cli import build_parser
    from nbexec.widgets.panel import ExecutorPanel

    cli_help = build_parser().format_help()
    panel = ExecutorPanel()
    for mode in MODES:
        taken = MODE_OPTIONS[mode]
        assert taken == tuple(dict.fromkeys(o.dest for o in OPTIONS if mode in o.modes))
        if mode != "dask":  # refused by the checks exactly when the table says so
            for name in ("workers", "address"):
                if name in taken:
                    validate(mode, {name: 2})
                else:
                    with pytest.raises(ValueError, match=f"does not fit mode '{mode}'"):
                        validate(mode, {name: 2})
            panel.mode.value = mode
            assert panel.visible_fields() == tuple(n for n in taken if n in panel._own)
            line = next(text for text in cli_help.splitlines() if text.strip().startswith(mode))
            assert ("takes no options" in line) == (not taken), line
