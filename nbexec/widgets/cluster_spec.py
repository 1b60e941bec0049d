"""Dask cluster classes as forms, without widgets: discovery, field specs, validation, preview.

- ``installed_cluster_classes()``: dotted names of the cluster classes installed here, found from a
  known list (distribution metadata and ``importlib.util.find_spec`` of the top-level package: no
  import) plus the ``nbexec.cluster_classes`` entry-point group (read, not loaded).
- ``describe(name)``: a ``ClusterSpec`` with one ``FieldSpec`` per parameter of the class — its
  signature, what its docstring documents, and for dask-jobqueue classes the job class's parameters
  (``JobQueueCluster`` passes ``**job_kwargs`` to ``job_cls``). Docstrings are read with
  docstring-parser (numpydoc style). A name resolves only to a ``distributed.deploy.Cluster``
  subclass; anything else is refused before it is called.
- ``ClusterSpec.check``: typed values and units (sizes, walltimes, durations) with
  errors by field name, plus the class's own checks where it has them (a job-queue class builds
  its job, which checks cores and memory, without submitting anything).
- ``ClusterSpec.preview``: the job script for job-queue classes, else the equivalent Python call.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import inspect
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..executors._cluster_class import LOCAL_CLUSTER, import_cluster_class, is_local_cluster
from .cluster_fields import UNSET, FieldSpec, field_kind

__all__ = [
    "ENTRY_POINT_GROUP", "KNOWN_CLASSES", "LOCAL_CLUSTER", "UNSET", "FieldSpec", "ClusterSpec",
    "installed_cluster_classes", "describe",
]  # fmt: skip

ENTRY_POINT_GROUP = "nbexec.cluster_classes"
#: distribution name -> the cluster classes it provides (dotted names).
KNOWN_CLASSES: dict[str, tuple[str, ...]] = {
    "distributed": (LOCAL_CLUSTER,),
    "dask-jobqueue": tuple(
        f"dask_jobqueue.{n}Cluster"
        for n in ("SLURM", "PBS", "SGE", "LSF", "HTCondor", "OAR", "Moab")
    ),
    "dask-kubernetes": ("dask_kubernetes.operator.KubeCluster",),
    "dask-cloudprovider": (
        "dask_cloudprovider.aws.EC2Cluster",
        "dask_cloudprovider.aws.ECSCluster",
        "dask_cloudprovider.aws.FargateCluster",
        "dask_cloudprovider.gcp.GCPCluster",
        "dask_cloudprovider.azure.AzureVMCluster",
        "dask_cloudprovider.digitalocean.DropletCluster",
        "dask_cloudprovider.hetzner.HetznerCluster",
        "dask_cloudprovider.openstack.OpenStackCluster",
        "dask_cloudprovider.ibm.IBMCodeEngineCluster",
    ),  # fmt: skip
    "dask-gateway": ("dask_gateway.GatewayCluster",),
    "dask-yarn": ("dask_yarn.YarnCluster",),
    "coiled": ("coiled.Cluster",),
}
# Not form material: event loops, sync/async switches, classes (a class is code), the worker count
# (the panel's own `workers` field scales any class), and what the cluster sets on each job itself.
_SKIP = {"self", "loop", "asynchronous", "job_cls", "scheduler_cls", "worker_class", "n_workers"}
_JOB_SKIP = {"scheduler", "name", "security", "interface", "protocol", "config_name"}
# What someone configuring a batch queue or a local cluster sets first, in this order.
_FIRST = (
    "cores", "memory", "processes", "queue", "account", "walltime", "job_cpu", "job_mem",
    "resource_spec", "job_extra_directives", "job_script_prologue", "log_directory", "python",
    "threads_per_worker", "memory_limit", "dashboard_address",
)  # fmt: skip


_MAIN = 14  # fields shown before "more options"
# Parameters a class's signature takes but its __init__ refuses (raises when not None): left out of
# the form and refused by ``check``. Keyed by the defining class's dotted name, found in the MRO.
_REFUSED: dict[str, dict[str, str]] = {
    "dask_jobqueue.core.JobQueueCluster": {
        n: f'pass it in scheduler_options, e.g. {{"{n}": {v!r}}}'
        for n, v in (("dashboard_address", ":8787"), ("host", "your-host"))
    },
}


def installed_cluster_classes() -> list[str]:
    """Dotted names of the known cluster classes installed here, then the entry points' classes."""
    names: list[str] = []
    for dist, classes in KNOWN_CLASSES.items():
        try:
            importlib.metadata.distribution(dist)
            installed = importlib.util.find_spec(classes[0].split(".")[0]) is not None
        except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
            installed = False
        if installed:
            names.extend(classes)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        module, _, attr = entry.value.partition(":")
        dotted = f"{module.strip()}.{attr.strip()}" if attr.strip() else module.strip()
        if dotted not in names:
            names.append(dotted)
    return names


def resolve(name: str) -> type:
    """The ``distributed.deploy.Cluster`` subclass named ``name``; ValueError for anything else."""
    return import_cluster_class(name.strip() or LOCAL_CLUSTER)


# --- class -> fields --------------------------------------------------------------------------


def _doc_params(cls: Any) -> dict[str, tuple[str, str]]:
    """``{name: (type text, help)}`` from a class's own numpydoc docstring (docstring-parser)."""
    import docstring_parser

    doc = cls.__dict__.get("__doc__") if isinstance(cls, type) else getattr(cls, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return {}
    try:
        parsed = docstring_parser.parse(
            inspect.cleandoc(doc), docstring_parser.DocstringStyle.NUMPYDOC
        )
    except docstring_parser.ParseError:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for param in parsed.params:
        for name in param.arg_name.replace(" ", "").split(","):
            if name.isidentifier() and name not in out:
                help_text = " ".join((param.description or "").split())
                out[name] = ((param.type_name or "").strip(), help_text)
    return out


def _init_params(cls: type, follow: bool) -> list[inspect.Parameter]:
    """Keyword parameters of ``cls.__init__``; with ``follow``, also those its ``**kwargs`` pass up."""
    params: list[inspect.Parameter] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            signature = inspect.signature(init)
        except (TypeError, ValueError):
            break
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the docstring
            hints = {}
        var_kw = None
        for p in signature.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                var_kw = p
            elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in seen:
                seen.add(p.name)
                params.append(p.replace(annotation=hints.get(p.name, p.annotation)))
        if var_kw is None or not follow:
            break
    return params


def _fields(
    cls: type, docs: dict[str, tuple[str, str]], job: bool, extras: bool = True
) -> list[FieldSpec]:
    skip = _SKIP | (_JOB_SKIP if job else set())
    params = _init_params(cls, follow=job or _passes_kwargs_up(cls))
    names = [p.name for p in params]
    own = _doc_params(cls)
    if (
        extras and not job and _has_var_kw(cls)
    ):  # documented keywords the signature only takes as **kwargs
        params += [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None)
            for n in own
            if n not in names
        ]
    out = []
    for p in params:
        type_text, help_text = docs.get(p.name, ("", ""))
        if p.name in skip or help_text.lower().startswith("deprecated"):
            continue
        kind = field_kind(p.name, p.annotation, type_text, p.default)
        out.append(
            FieldSpec(p.name, kind, p.default, help_text, type_text, p.name not in docs, job)
        )
    return out


def _has_var_kw(cls: type) -> bool:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in params)


def _passes_kwargs_up(cls: type) -> bool:
    """Whether ``cls.__init__`` takes ``**kwargs`` by that name: by convention, passed to super()."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD and p.name == "kwargs" for p in params)


def _merged_docs(*classes: Any) -> dict[str, tuple[str, str]]:
    docs: dict[str, tuple[str, str]] = {}
    for cls in classes:
        for klass in getattr(cls, "__mro__", (cls,)):
            if klass is object:
                continue
            for name, value in _doc_params(klass).items():
                docs.setdefault(name, value)
    return docs


@dataclass(frozen=True)
class ClusterSpec:
    """A cluster class as a form: its fields, how to check values, and what starting would do."""

    name: str
    cls: type
    fields: tuple[FieldSpec, ...]
    job_cls: type | None = None
    var_kw: bool = False  # the class takes **kwargs beyond its fields
    refused: tuple[tuple[str, str], ...] = ()  # (parameter, what to do instead): see _REFUSED

    @property
    def is_local(self) -> bool:
        return is_local_cluster(self.cls)

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def summary(self) -> str:
        """The first line of the class's docstring."""
        doc = inspect.getdoc(self.cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def check(self, kwargs: dict[str, Any]) -> dict[str, str]:
        """``{field: error}`` for values of the wrong type or unit, unknown names, and what the
        class's own checks refuse (``"_class"`` holds errors that name no field)."""
        errors: dict[str, str] = {}
        refused = dict(self.refused)
        for name, value in kwargs.items():
            spec = self.field(name)
            if name in refused:
                errors[name] = f"{self.cls.__name__} refuses {name}: {refused[name]}"
                continue
            if spec is None:
                if not self.var_kw:
                    known = ", ".join(f.name for f in self.fields)
                    errors[name] = (
                        f"{self.cls.__name__} takes no argument {name!r}; it takes: {known}"
                    )
                continue
            try:
                spec.check(value)
            except ValueError as exc:
                errors[name] = str(exc)
        if not errors and self.job_cls is not None:
            try:
                self._job(kwargs)
            except Exception as exc:  # noqa: BLE001 - the class's own check, shown by the form
                message = " ".join(str(exc).split())
                named = [f.name for f in self.fields if f"{f.name}" in message.split()]
                errors[named[0] if named else "_class"] = message
        return errors

    def _job(self, kwargs: dict[str, Any]) -> Any:
        """The job object the cluster would submit (no scheduler, nothing submitted)."""
        assert self.job_cls is not None
        job_kwargs = {k: v for k, v in kwargs.items() if (f := self.field(k)) is not None and f.job}
        job_kwargs.update({k: v for k, v in kwargs.items() if self.field(k) is None})
        if "config_name" in kwargs:
            job_kwargs["config_name"] = kwargs["config_name"]
        # As dask-jobqueue's own cluster.job_script() does before the scheduler exists.
        return self.job_cls(
            "tcp://<insert-scheduler-address-here>:8786", name="dummy-name", **job_kwargs
        )

    def preview(self, kwargs: dict[str, Any], workers: int | None = None,
                adapt: tuple[int, int] | None = None) -> str:  # fmt: skip
        """What starting would do: the job script (job-queue classes) or the Python call."""
        errors = self.check(kwargs)
        if errors:
            raise ValueError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        if self.job_cls is not None:
            return str(self._job(kwargs).job_script())
        return self.python_call(kwargs, workers, adapt)

    def python_call(self, kwargs: dict[str, Any], workers: int | None = None,
                    adapt: tuple[int, int] | None = None) -> str:  # fmt: skip
        """The equivalent Python: create the cluster, scale or adapt it, connect a client."""
        module = self.cls.__module__
        public = self.name.rpartition(".")[0] or module
        call = dict(kwargs)
        if self.is_local and workers is not None:
            call = {"n_workers": workers, **call}
        args = ",\n".join(f"    {k}={v!r}" for k, v in call.items())
        imports = (
            [f"from distributed import Client, {self.cls.__name__}"]
            if public == "distributed"
            else ["from distributed import Client", f"from {public} import {self.cls.__name__}"]
        )
        lines = [
            *imports,
            "",
            f"cluster = {self.cls.__name__}(\n{args},\n)"
            if args
            else f"cluster = {self.cls.__name__}()",
        ]
        if workers is not None and not self.is_local:
            lines.append(f"cluster.scale({workers})")
        if adapt is not None:
            lines.append(f"cluster.adapt(minimum={adapt[0]}, maximum={adapt[1]})")
        lines.append("client = Client(cluster)")
        return "\n".join(lines)


@cache
def _describe(cls: type, name: str) -> ClusterSpec:
    job_cls = getattr(cls, "job_cls", None)
    if not (isinstance(job_cls, type) and hasattr(job_cls, "job_script")):
        job_cls = None
    docs = _merged_docs(cls, *([job_cls] if job_cls else []))
    fields = _fields(cls, docs, job=False, extras=job_cls is None)
    if job_cls is not None:
        names = {f.name for f in fields}
        job_fields = [f for f in _fields(job_cls, docs, job=True) if f.name not in names]
        # What each job asks the queue for comes first: cores, memory, queue, walltime, ...
        fields = job_fields + fields
    if job_cls is not None:
        fields = [_with_config(f, getattr(job_cls, "config_name", None)) for f in fields]
    if is_local_cluster(cls):  # what LocalCluster's None defaults become
        hints = {"threads_per_worker": "default: cores ÷ workers", "processes": "default: yes"}
        fields = [dataclasses.replace(f, default_text=hints.get(f.name, "")) for f in fields]
    first = [n for n in _FIRST if any(f.name == n for f in fields)]
    fields.sort(key=lambda f: (f.advanced, first.index(f.name) if f.name in first else len(first)))
    # A long form shows what is set most often; the rest waits under "more options".
    fields = [
        dataclasses.replace(f, advanced=True) if i >= _MAIN else f for i, f in enumerate(fields)
    ]
    refused = _refused(cls)
    fields = [f for f in fields if f.name not in refused]
    var_kw = _has_var_kw(cls) and job_cls is None
    return ClusterSpec(name, cls, tuple(fields), job_cls, var_kw, tuple(refused.items()))


def _refused(cls: type) -> dict[str, str]:
    refused: dict[str, str] = {}
    for klass in cls.__mro__:
        refused.update(_REFUSED.get(f"{klass.__module__}.{klass.__qualname__}", {}))
    return refused


def _with_config(spec: FieldSpec, config_name: str | None) -> FieldSpec:
    """dask-jobqueue reads a keyword left as None from ``jobqueue.<config_name>.<keyword>``."""
    if spec.default is not None or not config_name:
        return spec
    import dask

    value = dask.config.get(f"jobqueue.{config_name}.{spec.name.replace('_', '-')}", None)
    if value is None and spec.name in ("cores", "memory"):  # the job class refuses None for these
        return dataclasses.replace(spec, default=UNSET)
    if value is None and spec.name == "processes":
        return dataclasses.replace(spec, default_text="default: about √cores")
    if value in (None, "", [], {}):
        return spec
    return dataclasses.replace(spec, default_text=f"default: {value} (dask config)")


def describe(name_or_cls: str | type) -> ClusterSpec:
    """The form of a cluster class, given by dotted name (resolved safely) or as the class."""
    if isinstance(name_or_cls, str):
        cls = resolve(name_or_cls)
        name = name_or_cls.strip() or LOCAL_CLUSTER
    else:
        cls = name_or_cls
        name = f"{cls.__module__}.{cls.__qualname__}"
    return _describe(cls, name)
