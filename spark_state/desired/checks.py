"""Cross-reference checks on a structurally valid (possibly partial) state: pure, no I/O.

Each finding carries the field path it is about, so the loader can point at the file, line and column.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..stacks import STACKS, trtllm
from . import hazards
from .compat import KNOWN_GPUS, Support, known_bad_fix, trtllm_support, trtllm_version_for_image, version_tuple
from .downloads import download_image
from .fields import LATENCY_BOUNDS
from .model import (
    DesiredState,
    EngineService,
    LlamaCppService,
    NimService,
    PytorchService,
    SglangService,
    VllmService,
    host_gpu,
    host_services,
)
from .names import ALL_HOSTS_GROUP, NODE_EXPORTER_PORT

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    path: Path
    message: str
    at_key: bool = False
    warning: bool = False


@dataclass
class _Collector:
    declared: Mapping[str, set[str]]
    findings: list[Finding] = field(default_factory=list)

    def error(self, path: Path, message: str, at_key: bool = False) -> None:
        self.findings.append(Finding(path, message, at_key))

    def warn(self, path: Path, message: str) -> None:
        self.findings.append(Finding(path, message, warning=True))

    def ref(self, path: Path, section: str, name: str | None, what: str) -> bool:
        """Report a reference to an undeclared entry; True when it resolves."""
        if name is None:
            return False
        if name not in self.declared.get(section, set()):
            names = sorted(self.declared.get(section, set()))
            known = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "") or "none declared"
            self.error(path, f"unknown {what} {name!r} (known: {known})")
            return False
        return True


def image_trtllm_version(state: DesiredState, image_name: str) -> str | None:
    """What a tag we know says wins over a declared trtllm_version (a contradiction is reported on its own)."""
    image = state.images[image_name]
    return trtllm_version_for_image(image.ref) or image.trtllm_version


def check(state: DesiredState, declared: Mapping[str, set[str]] | None = None) -> list[Finding]:
    """Every cross-reference problem in `state`. `declared` names entries that exist in the file even when
    they failed validation (so a reference to them is not reported as unknown)."""
    names = declared or {
        "images": set(state.images),
        "checkpoints": set(state.checkpoints),
        "engines": set(state.engines),
        "services": set(state.services),
        "groups": set(state.groups),
        "hosts": set(state.hosts),
    }
    c = _Collector(names)
    _check_repeats(state, c)
    _check_checkpoints(state, c)
    _check_engines(state, c)
    _check_services(state, c)
    _check_hosts(state, c)
    _check_bench(state, c)
    _check_memory_guard(state, c)
    _check_monitoring(state, c)
    _check_rollout(state, c)
    _check_build_images(state, c)
    _check_image_versions(state, c)
    _check_engine_builds(state, c)
    hazards.check(state, c.error, c.warn)
    return c.findings


def _check_repeats(state: DesiredState, c: _Collector) -> None:
    """A list that names the same thing twice says it once too often (and 40,000 repeats cost the checks
    after it their time): each repeat is refused where it stands."""
    lists: list[tuple[Path, list[object]]] = [(("bench", "concurrency"), list(state.bench.concurrency))]
    lists.append((("bench", "depths"), list(state.bench.depths)))
    lists += [(("groups", name, "services"), list(g.services)) for name, g in state.groups.items()]
    for name, host in state.hosts.items():
        lists += [(("hosts", name, "services"), list(host.services)), (("hosts", name, "groups"), list(host.groups))]
    for path, items in lists:
        seen: set[object] = set()
        for index, item in enumerate(items):
            if item in seen:
                c.error((*path, index), f"{item!r} is listed twice")
            seen.add(item)


def _check_checkpoints(state: DesiredState, c: _Collector) -> None:
    for name, ckpt in state.checkpoints.items():
        c.ref(("checkpoints", name, "fetch_image"), "images", ckpt.fetch_image, "image")
        path: Path = ("checkpoints", name, "tokenizer_from")
        if ckpt.tokenizer_from == name:
            c.error(path, "a checkpoint cannot take its tokenizer from itself")
        elif c.ref(path, "checkpoints", ckpt.tokenizer_from, "checkpoint"):
            source = state.checkpoints.get(ckpt.tokenizer_from)  # type: ignore[arg-type]
            if source is not None and source.tokenizer_from is not None:
                c.error(
                    path,
                    f"{ckpt.tokenizer_from!r} takes its own tokenizer from {source.tokenizer_from!r}; "
                    "point at the checkpoint that carries the tokenizer",
                )


def _check_engines(state: DesiredState, c: _Collector) -> None:
    for name, engine in state.engines.items():
        c.ref(("engines", name, "checkpoint"), "checkpoints", engine.checkpoint, "checkpoint")
        c.ref(("engines", name, "image"), "images", engine.image, "image")
        if engine.convert_args and not engine.convert_script:
            c.error(
                ("engines", name, "convert_args"),
                "spark-state's converter takes no extra flags (it converts "
                "through TensorRT-LLM's library); convert_args go with a "
                "convert_script of your own",
            )
        if engine.max_input_len > engine.max_seq_len:
            c.error(
                ("engines", name, "max_input_len"),
                f"{engine.max_input_len} exceeds max_seq_len ({engine.max_seq_len})",
            )


def _check_services(state: DesiredState, c: _Collector) -> None:
    for name, svc in state.services.items():
        base: Path = ("services", name)
        if isinstance(svc, EngineService):
            if c.ref(base + ("engine",), "engines", svc.engine, "engine") and svc.engine in state.engines:
                engine = state.engines[svc.engine]
                for flag in ("max_batch_size", "max_num_tokens", "max_seq_len"):
                    served, built = getattr(svc, flag), getattr(engine, flag)
                    if served is not None and served > built:
                        c.error(base + (flag,), f"{served} exceeds the engine's {flag} ({built}); rebuild the engine")
            c.ref(base + ("image",), "images", svc.image, "image")
            c.ref(base + ("tokenizer",), "checkpoints", svc.tokenizer, "checkpoint")
        elif isinstance(svc, PytorchService):
            c.ref(base + ("checkpoint",), "checkpoints", svc.checkpoint, "checkpoint")
            c.ref(base + ("image",), "images", svc.image, "image")
            c.ref(base + ("tokenizer",), "checkpoints", svc.tokenizer, "checkpoint")
            version = image_trtllm_version(state, svc.image) if svc.image in state.images else None
            for problem in trtllm.option_problems(svc.llm_api_options, version):
                c.error(base + ("llm_api_options", *problem.path), problem.message, at_key=True)
        elif isinstance(svc, VllmService | SglangService):
            c.ref(base + ("checkpoint",), "checkpoints", svc.checkpoint, "checkpoint")
            c.ref(base + ("tokenizer",), "checkpoints", svc.tokenizer, "checkpoint")
            if c.ref(base + ("image",), "images", svc.image, "image") and svc.image in state.images:
                _check_flag_options(c, base, svc, state.images[svc.image].ref)
        elif isinstance(svc, LlamaCppService):
            _check_llamacpp(state, c, base, svc)
        elif isinstance(svc, NimService):
            c.ref(base + ("container",), "images", svc.container, "image")
        if svc.expect.goodput_pct is not None and not any(
            getattr(svc.expect, bound) is not None for bound in LATENCY_BOUNDS
        ):
            c.error(
                base + ("expect", "goodput_pct"),
                f"goodput counts the requests that meet the latency bounds: declare at least one "
                f"({', '.join(LATENCY_BOUNDS)})",
            )
        for conc in svc.expect.aggregate_tok_s:
            if conc not in state.bench.concurrency:
                c.error(
                    base + ("expect", "aggregate_tok_s", conc),
                    f"the bench does not run concurrency {conc} (bench.concurrency: {state.bench.concurrency})",
                    at_key=True,
                )


def _check_llamacpp(state: DesiredState, c: _Collector, base: Path, svc: LlamaCppService) -> None:
    if (
        c.ref(base + ("checkpoint",), "checkpoints", svc.checkpoint, "checkpoint")
        and svc.checkpoint in state.checkpoints
    ):
        files = state.checkpoints[svc.checkpoint].files
        if not files:
            c.error(
                base + ("gguf",),
                f"checkpoint {svc.checkpoint!r} would download its whole repo, every quantization in it: give it "
                f"files: [{svc.gguf}] (split GGUF: a pattern matching every part)",
            )
        elif not any(fnmatch.fnmatchcase(svc.gguf, pattern) for pattern in files):
            c.error(
                base + ("gguf",),
                f"{svc.gguf} is not among the files checkpoint {svc.checkpoint!r} downloads ({', '.join(files)})",
            )
    if c.ref(base + ("image",), "images", svc.image, "image") and svc.image in state.images:
        _check_flag_options(c, base, svc, state.images[svc.image].ref)
    if svc.memory_gib is None:
        c.warn(
            base,
            "llama.cpp sizes its KV cache to its context (with --fit on, to what is free): the plan cannot reckon "
            "its memory; give memory_gib so every service on its Spark is held to a share",
        )


def _check_flag_options(
    c: _Collector, base: Path, svc: VllmService | SglangService | LlamaCppService, ref: str
) -> None:
    """A flag-configured server's options against its flags at the image's version, where the tag tells it."""
    server = STACKS[svc.stack].flags
    assert server is not None
    version = server.version_for_image(ref)
    for option, message in server.option_problems(svc.options, version):
        c.error(base + ("options", option), message, at_key=True)
    if version is None:
        c.warn(
            base + ("image",),
            f"image {ref}: its {server.label} version is not known from the tag; the options are checked when the "
            "service starts",
        )
    elif server.flags(version) is None:
        c.warn(
            base + ("image",),
            f"image {ref} ships {server.label} {version}, whose flags spark-state has not on file "
            f"({', '.join(server.known_versions())}): the options are checked when it starts",
        )


def _check_hosts(state: DesiredState, c: _Collector) -> None:
    if not c.declared.get("hosts"):
        c.error(
            ("hosts",), "no hosts declared: a state says which Sparks serve what (hosts: {spark-01: {address: ...}})"
        )
    for gname, group in state.groups.items():
        if gname == ALL_HOSTS_GROUP:
            c.error(
                ("groups", gname),
                f"{gname!r} is the inventories' group of every host: a state group cannot take that name",
                at_key=True,
            )
        for i, sname in enumerate(group.services):
            c.ref(("groups", gname, "services", i), "services", sname, "service")
    placed: set[str] = set()
    for hname, host in state.hosts.items():
        for i, gname in enumerate(host.groups):
            c.ref(("hosts", hname, "groups", i), "groups", gname, "group")
        for i, sname in enumerate(host.services):
            c.ref(("hosts", hname, "services", i), "services", sname, "service")
        ports: dict[int, str] = {}
        for sname in host_services(state, hname):
            placed.add(sname)
            svc = state.services.get(sname)
            if svc is None:
                continue
            if svc.port in ports:
                where: Path = (
                    ("hosts", hname, "services", host.services.index(sname))
                    if sname in host.services
                    else ("hosts", hname, "groups")
                )
                c.error(where, f"port {svc.port} of {sname!r} is also used by {ports[svc.port]!r} on host {hname!r}")
            ports.setdefault(svc.port, sname)
    for sname in state.services:
        if sname not in placed and state.hosts:
            c.warn(("services", sname), f"service {sname!r} is placed on no host")
    _check_downloads(state, c)


def _check_downloads(state: DesiredState, c: _Collector) -> None:
    """Each checkpoint a llama.cpp service serves is downloaded on its host by an image with huggingface_hub
    (desired.downloads, the rule the plan follows): a service or engine there that uses it too, or the checkpoint's
    fetch_image (llama.cpp's images have no Python)."""
    for hname in state.hosts:
        services = [s for s in host_services(state, hname) if s in state.services]
        engines = [svc.engine for s in services if isinstance(svc := state.services[s], EngineService)]
        for s in services:
            svc = state.services[s]
            if not isinstance(svc, LlamaCppService) or svc.checkpoint not in state.checkpoints:
                continue
            if download_image(state, svc.checkpoint, services, engines) is None:
                c.error(
                    ("checkpoints", svc.checkpoint),
                    f"on host {hname!r} only llama.cpp serves it, whose images have no Python to download with: "
                    "give the checkpoint fetch_image: an image with huggingface_hub (a vLLM, SGLang or "
                    "TensorRT-LLM image)",
                )


def _check_bench(state: DesiredState, c: _Collector) -> None:
    c.ref(("bench", "baseline"), "services", state.bench.baseline, "service")
    if state.bench.input_tokens is not None and "prompt" in state.bench.model_fields_set:
        c.error(("bench", "input_tokens"), "prompt and input_tokens both say what every request asks: give one")


def _check_memory_guard(state: DesiredState, c: _Collector) -> None:
    guard, reserved = state.fleet.memory_guard, state.fleet.reserved_memory_gib
    if guard.enabled and guard.available_below_gib >= reserved:
        c.error(
            ("fleet", "memory_guard", "available_below_gib"),
            f"{guard.available_below_gib:g} GiB is not under fleet.reserved_memory_gib ({reserved:g} GiB): earlyoom "
            "would end servers that fit their budget; lower it, or reserve more",
        )


def _check_monitoring(state: DesiredState, c: _Collector) -> None:
    """Prometheus on a declared host, on a port no service there takes; the node exporter's port free on every
    host."""
    monitoring = state.monitoring
    if monitoring is None:
        return
    c.ref(("monitoring", "host"), "hosts", monitoring.host, "host")
    taken = {(monitoring.host, monitoring.port): "Prometheus"} if monitoring.host in state.hosts else {}
    taken |= {(hname, NODE_EXPORTER_PORT): "the node exporter" for hname in state.hosts}
    for hname in state.hosts:
        for sname in host_services(state, hname):
            svc = state.services.get(sname)
            if svc is not None and (hname, svc.port) in taken:
                owner = taken[hname, svc.port]
                fix = "monitoring.port or this one" if owner == "Prometheus" else "this one"
                c.error(("services", sname, "port"), f"port {svc.port} on host {hname!r} is {owner}'s: change {fix}")


def _check_rollout(state: DesiredState, c: _Collector) -> None:
    canary = state.rollout.canary
    for i, hname in enumerate(canary):
        if c.ref(("rollout", "canary", i), "hosts", hname, "host") and hname in canary[:i]:
            c.error(("rollout", "canary", i), f"host {hname!r} is listed twice")
    if canary and state.hosts and set(canary) >= set(state.hosts):
        c.warn(("rollout", "canary"), "every host is a canary: the rollout goes to all of them at once")


def _check_image_versions(state: DesiredState, c: _Collector) -> None:
    """A declared trtllm_version overrides what the tag says; one that contradicts a tag we know is a mistake
    that would let a known-bad image through validation."""
    for name, image in state.images.items():
        from_tag = trtllm_version_for_image(image.ref)
        if image.trtllm_version and from_tag and version_tuple(image.trtllm_version) != version_tuple(from_tag):
            c.error(
                ("images", name, "trtllm_version"),
                f"{image.ref} ships TensorRT-LLM {from_tag}, not {image.trtllm_version}; drop trtllm_version",
            )


def _check_engine_builds(state: DesiredState, c: _Collector) -> None:
    """An engine declared on an image whose TensorRT-LLM no longer has trtllm-build (nor --backend tensorrt) is
    refused before a pull of tens of GB; the fix is to serve its checkpoint directly."""
    uses: list[tuple[Path, str, str]] = [
        (("engines", name, "image"), engine.image, engine.checkpoint) for name, engine in state.engines.items()
    ]
    uses += [
        (("services", name, "image"), svc.image, state.engines[svc.engine].checkpoint)
        for name, svc in state.services.items()
        if isinstance(svc, EngineService) and svc.image is not None and svc.engine in state.engines
    ]
    for path, image, checkpoint in uses:
        if image in state.images:
            version = image_trtllm_version(state, image)
            if trtllm.has_trtllm_build(version) is False:
                c.error(path, trtllm.no_trtllm_build_fix(state.images[image].ref, version, checkpoint))


def _gpus_for(state: DesiredState, users: set[str]) -> set[str]:
    """GPUs of the hosts serving any of the services in `users`; the fleet's GPU when none is placed."""
    gpus = {host_gpu(state, h) for h in state.hosts if users & set(host_services(state, h))}
    if not gpus:
        gpus = {state.fleet.gpu}
    return {g for g in gpus if g is not None}


def _check_build_images(state: DesiredState, c: _Collector) -> None:
    """An image whose TensorRT-LLM is known-bad for the GPU that would run it is refused before any build."""
    usages: list[tuple[Path, str, set[str]]] = []
    for name, engine in state.engines.items():
        users = {s for s, svc in state.services.items() if isinstance(svc, EngineService) and svc.engine == name}
        usages.append((("engines", name, "image"), engine.image, users))
    for name, svc in state.services.items():
        if isinstance(svc, (EngineService, PytorchService)) and svc.image is not None:
            usages.append((("services", name, "image"), svc.image, {name}))
    for path, image_name, users in usages:
        if image_name not in state.images:
            continue
        version = image_trtllm_version(state, image_name)
        ref = state.images[image_name].ref
        for gpu_name in sorted(_gpus_for(state, users)):
            gpu = KNOWN_GPUS[gpu_name]
            verdict = trtllm_support(version, gpu)
            if verdict.support is Support.KNOWN_BAD:
                c.error(path, known_bad_fix(ref, version or "?", gpu))
            elif verdict.support is not Support.VERIFIED:
                c.warn(path, f"image {ref}: {verdict.reason}")
