"""Fine-tuning: what ``--init-weights FILE|shipped|official`` (or a family's own ``KIND:FILE,...``)
resolves to for one model (:class:`InitWeights`, hashed into the provenance), and loading it
through the registry family's ``load_weights`` (GhostSR ghostifies a base-network state dict)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import HarnessError
from .targets import esr_family, fresh_model, rng_kept

INIT_SHORTHANDS = ("shipped", "official")


@dataclass(frozen=True)
class InitWeights:
    """What ``--init-weights`` resolved to for one model: the choice handed to the family's
    ``load_weights`` and the files behind it (hashed into the provenance)."""

    given: str          # as on the command line
    choice: str         # for load_weights: a path, or a family's own form (ClassSR's branches:A,B,C)
    files: Tuple[Path, ...]
    source: str         # the id whose weights they are (the base network of a GhostSR id)

    def sha256(self) -> List[str]:
        return [hashlib.sha256(f.read_bytes()).hexdigest() for f in self.files]

    def describe(self) -> str:
        """The provenance's ``init``: ``weights FILE (sha256 ...)``."""
        what = ", ".join(str(f) for f in self.files) if self.given in INIT_SHORTHANDS else self.choice
        shas = ", ".join(self.sha256()) or "no file"
        extra = f"; {self.given} weights of {self.source}" if self.given in INIT_SHORTHANDS else ""
        return f"weights {what} (sha256 {shas}{extra})"


def init_source(model_id: str) -> str:
    """The id whose shipped/official weights ``--init-weights shipped``/``official`` loads for
    ``model_id``: the registry family's ``base_of`` (GhostSR: its base network), else the id itself."""
    from ..models.registry import lookup

    family = lookup(model_id)
    return family.base_of(model_id) if family.base_of is not None else model_id


def resolve_init(model_id: str, given: str) -> InitWeights:
    """``--init-weights`` for ``model_id``: a file, ``shipped``/``official`` (of :func:`init_source`),
    or a family's own ``KIND:FILE,...`` form (ClassSR: ``branches:D16,D36,D56``); one-line errors."""
    import re

    given = str(given).strip()
    if given in INIT_SHORTHANDS:
        source = init_source(model_id)
        if given == "shipped":
            from ..weights import shipped_file

            return InitWeights(given, str(shipped_file(source)), (shipped_file(source),), source)
        if esr_family(source) is None:
            raise HarnessError(f"--init-weights official: the harness keeps official weights for the eSR pool only, "
                               f"not {source}; give --init-weights FILE or shipped")
        from ..models import esr
        from ..weights import manifest, official_file

        stem = esr.official_name(source)
        if stem not in manifest():
            raise HarnessError(f"--init-weights official: the eSR authors published no {source}; give "
                               f"--init-weights FILE or shipped")
        path = official_file(stem)
        return InitWeights(given, str(path), (path,), source)
    path = Path(given).expanduser()
    kind = re.fullmatch(r"([A-Za-z]\w*):(.+)", given)
    if kind and not path.exists():  # the family's loader reads it; hash the files it names
        files = tuple(Path(t.strip()).expanduser().resolve() for t in kind.group(2).split(",")
                      if t.strip() and Path(t.strip()).expanduser().is_file())
        return InitWeights(given, given, files, model_id)
    if not path.is_file():
        raise HarnessError(f"--init-weights {given}: no such file; give a weights file (a state dict such as "
                           f"the <id>.pt that train writes), shipped or official")
    path = path.resolve()
    return InitWeights(given, str(path), (path,), model_id)


def load_init(model_id: str, model, init: InitWeights):
    """``model``'s module with the ``init`` weights, through the registry family's ``load_weights``
    (GhostSR ghostifies a base-network state dict; ClassSR takes ``branches:``)."""
    from ..models.registry import lookup

    return lookup(model_id).load_weights(model_id, init.choice, model)


def check_init(model_id: str, scale: Optional[int], given: str) -> None:
    """Loads ``given`` into a fresh ``model_id`` once (torch's RNG untouched): the weights must exist and fit
    before any training starts."""
    with rng_kept():
        load_init(model_id, fresh_model(model_id, scale), resolve_init(model_id, given))
