"""Build a network from its analysis and load a checkpoint into it: every tensor matched, or an error.

The network is built on the meta device (no memory, no random initialisation) and the file's tensors are
assigned into it (``load_state_dict(assign=True)``), memory-mapped where the container allows. A missing
tensor is never filled in: only the policies a user names explicitly (``reinit_head``) let the network's
own initialisation stand for tensors the file does not match, and the report lists each one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .analysis import Analysis, analyze_header, best_match, inspect
from .errors import CheckpointError, LoadRefusedError, MissingCompanionError
from .keymap import Match, entry_tables, rename, strip_prefix
from .reader import Header, read_header
from .registry import Entry, get_entry
from .tensors import read_tensors

POLICIES = ("refuse", "reinit_head")


@dataclass
class LoadedModel:
    """A network in eval mode with the weights of one checkpoint, and how they were matched."""

    module: nn.Module
    analysis: Analysis
    entry: Entry
    path: Path
    device: torch.device
    dtype: torch.dtype
    reinitialised: list[str] = field(default_factory=list)
    companions: dict[str, Path] = field(default_factory=dict)


def accepts(analysis: Analysis, policy: str = "refuse") -> bool:
    """Whether ``load_model`` loads a file of this analysis under ``policy``: an identified file, or with
    ``reinit_head`` a partial one that misses no tensor (only differently shaped ones: another head)."""
    if analysis.verdict == "identified":
        return True
    return analysis.verdict == "partial" and policy == "reinit_head" and not analysis.missing


def _refuse(analysis: Analysis, path: Path, policy: str) -> None:
    if accepts(analysis, policy):
        return
    hint = ""
    if analysis.verdict == "partial" and analysis.mismatched and not analysis.missing:
        hint = " (pass policy='reinit_head' to re-initialise only the differing head)"
    raise LoadRefusedError(
        analysis, f"{path}: refusing to load a checkpoint that is '{analysis.verdict}': {analysis.reason}{hint}"
    )


def _float_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    resolved = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype, not {dtype!r}")
    return resolved


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return tensor.to(dtype) if tensor.is_floating_point() and tensor.dtype != dtype else tensor


def _file_state(header: Header, match: Match, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    tensors = read_tensors(header, match.pairs.values())
    return {module_key: _cast(tensors[published], dtype) for module_key, published in match.pairs.items()}


def _companion_state(
    entry: Entry, network: nn.Module, companions: Mapping[str, str | Path], dtype: torch.dtype
) -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    state: dict[str, torch.Tensor] = {}
    used: dict[str, Path] = {}
    outside = [k for k in network.state_dict() if not entry.keys.in_scope(k)]
    for companion in entry.keys.requires:
        if companion.entry not in companions:
            raise MissingCompanionError(
                f"{entry.id} needs the weights of '{companion.entry}' "
                f"({get_entry(companion.entry).published.get('file', companion.entry)}); "
                f"pass companions={{'{companion.entry}': PATH}}"
            )
        path = Path(companions[companion.entry])
        header = read_header(path)
        report = analyze_header(header, str(path))
        if report.verdict != "identified" or report.entry != companion.entry:
            raise LoadRefusedError(
                report, f"{path} was given as '{companion.entry}' but is '{report.verdict}' ({report.reason})"
            )
        bare = strip_prefix(header.tensors, report.prefix) or {}
        wanted = {}
        for module_key in outside:
            published = rename(module_key, companion.renames)
            if published in bare and module_key not in state:
                wanted[module_key] = bare[published]
        tensors = read_tensors(header, wanted.values())
        state.update({k: _cast(tensors[p], dtype) for k, p in wanted.items()})
        used[companion.entry] = path
    missing = [k for k in outside if k not in state and not entry.keys.is_optional(k)]
    if missing:
        raise CheckpointError(f"{entry.id}: the companion files do not provide {', '.join(missing[:5])}")
    return state, used


def _optional_defaults(network: nn.Module, state: dict[str, torch.Tensor], entry: Entry) -> None:
    """BatchNorm's ``num_batches_tracked`` counters the file lacks start at zero, as the module's do."""
    for key, tensor in network.state_dict().items():
        if key not in state and entry.keys.is_optional(key) and not tensor.is_floating_point():
            state[key] = torch.zeros(tensor.shape, dtype=tensor.dtype)


def _owner(network: nn.Module, key: str) -> tuple[str, nn.Module]:
    name = key.rpartition(".")[0]
    return name, network.get_submodule(name)


def _leftover_meta(network: nn.Module) -> list[str]:
    tensors = list(network.named_parameters()) + list(network.named_buffers())
    return [name for name, t in tensors if t.is_meta]


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    *,
    policy: str = "refuse",
    companions: Mapping[str, str | Path] | None = None,
    verify: bool = True,
) -> LoadedModel:
    """Identify ``path`` from its contents, build its network and load every tensor strictly.

    ``dtype`` is the floating-point dtype to compute in (float32 by default, whatever the file stores).
    ``policy='reinit_head'`` accepts a ``partial`` file whose only differences are tensors of another
    shape (a head with another class count) and re-initialises those modules with the network's own
    initialisation; they are listed in ``LoadedModel.reinitialised``. Anything else raises.
    ``verify`` checks zip archives' CRCs before loading (one read of the data).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    path = Path(path)
    header, analysis = inspect(path, verify=verify)
    _refuse(analysis, path, policy)
    assert header is not None
    entry = get_entry(analysis.entry)  # type: ignore[arg-type]
    match = best_match(header.tensors, entry, entry_tables(entry.id))
    compute_dtype = _float_dtype(dtype)
    state = _file_state(header, match, compute_dtype)
    reinitialised: list[str] = []
    if match.mismatched:
        network = entry.build()
        for item in match.mismatched:
            name, owner = _owner(network, str(item["key"]))
            if name not in reinitialised and hasattr(owner, "reset_parameters"):
                owner.reset_parameters()
                reinitialised.append(name)
        state.update({k: v for k, v in network.state_dict().items() if k not in state})
    else:
        with torch.device("meta"):
            network = entry.build()
    extra, used = _companion_state(entry, network, companions or {}, compute_dtype) if entry.keys.requires else ({}, {})
    state.update(extra)
    _optional_defaults(network, state, entry)
    try:
        network.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the tensors do not fit {entry.id}'s network: {exc}") from exc
    leftover = _leftover_meta(network)
    if leftover:
        raise CheckpointError(
            f"{entry.id}: the network still holds tensors without values after loading: {', '.join(leftover[:5])}; "
            "non-persistent constants must be created with device='cpu' (docs/adding-a-network.md)"
        )
    network = network.to(device=device, dtype=compute_dtype).eval()
    return LoadedModel(
        module=network,
        analysis=analysis,
        entry=entry,
        path=path,
        device=torch.device(device),
        dtype=compute_dtype,
        reinitialised=reinitialised,
        companions=used,
    )
