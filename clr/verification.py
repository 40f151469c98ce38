"""Verified bounds: the bound pairs a range test's curve offers, and the choice among them once each has been trained
one whole cycle from the same initial weights and judged by its loss on held-out data (pure Python; the worker trains
them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from clr.bounds import MIN_BOUND_RATIO, SMITH_BOUND_RATIO, BoundSuggestion

MAX_CANDIDATES = 7
SAME_BOUNDS = 1.25  # two pairs whose bounds both lie within this factor of each other are one candidate


@dataclass(frozen=True)
class Candidate:
    """A bound pair to train, and what the curve says of it."""

    name: str
    min_lr: float
    max_lr: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _pair(name: str, max_lr: float, min_lr: float) -> Candidate:
    return Candidate(name, min(min_lr, max_lr / MIN_BOUND_RATIO), max_lr)


def candidates(suggestion: BoundSuggestion, count: int) -> list[Candidate]:
    """The first `count` distinct pairs of: the suggestion, fastai's valley as `max_lr` (Smith's `base_lr` a quarter
    of it), Smith's reading of the accuracy (where recorded), half and twice the suggested `max_lr`, a quarter and
    four times it (`base_lr` kept, or lowered to keep the bounds `MIN_BOUND_RATIO` apart)."""
    low, high = suggestion.min_lr, suggestion.max_lr
    accuracy = [Candidate("accuracy", *suggestion.accuracy_bounds)] if suggestion.accuracy_bounds else []
    offered = [Candidate("suggested", low, high),
               _pair("valley", suggestion.valley_lr, suggestion.valley_lr / SMITH_BOUND_RATIO), *accuracy,
               _pair("half max_lr", high / 2, low), _pair("twice max_lr", high * 2, low),
               _pair("quarter max_lr", high / 4, low), _pair("four times max_lr", high * 4, low)]
    chosen: list[Candidate] = []
    for candidate in offered:
        if not any(_same(candidate, other) for other in chosen):
            chosen.append(candidate)
    return chosen[:count]


def _same(one: Candidate, other: Candidate) -> bool:
    return all(max(a / b, b / a) < SAME_BOUNDS for a, b in ((one.min_lr, other.min_lr), (one.max_lr, other.max_lr)))


def score(measured: dict) -> float:
    """What ranks a trained candidate, higher is better: its validation loss, negated (a proper score, and finer
    than the accuracy of a small validation split, where one sample can be a point); a diverged one ranks last."""
    loss = measured.get("val_loss")
    return float("-inf") if loss is None else -loss


def chosen(measured: list[dict]) -> dict:
    """The one-standard-error rule: of the candidates whose validation loss is within one standard error of the
    lowest (the lowest one's `val_loss_se`), the curve's own suggestion if it is one of them, else the one with the
    lowest `max_lr`, the most stable: a higher rate that wins a short cycle by less than the noise of the validation
    split is no better, and may not hold over a longer training."""
    best = max(measured, key=score)
    if best.get("val_loss") is None:
        return best
    close = [row for row in measured if row.get("val_loss") is not None
             and row["val_loss"] <= best["val_loss"] + (best.get("val_loss_se") or 0.0)]
    return next((row for row in close if row["name"] == "suggested"), min(close, key=lambda row: row["max_lr"]))


def verified(suggestion: BoundSuggestion, measured: list[dict]) -> BoundSuggestion:
    """The suggestion replaced by the chosen trained candidate, saying so."""
    best, pick = max(measured, key=score), chosen(measured)

    def judged(row: dict) -> str:
        if row.get("val_loss") is None:
            return "diverged"
        accuracy = row.get("val_accuracy")
        return f"validation loss {row['val_loss']:.4g}" + (f", accuracy {accuracy:.4f}" if accuracy is not None else "")

    note = (f" Verified: of {len(measured)} bound pairs trained one cycle of {pick['epochs']} epochs each from the "
            f"same initial weights, {pick['name']!r} ({pick['min_lr']:.3g} to {pick['max_lr']:.3g}) is chosen "
            f"({judged(pick)})")
    if best is not pick:
        note += (f": {best['name']!r} did best ({judged(best)}), but by less than one standard error, and "
                 + ("the curve's own suggestion is kept" if pick["name"] == "suggested" else "its max_lr is lower"))
    return replace(suggestion, min_lr=pick["min_lr"], max_lr=pick["max_lr"], verified=True,
                   explanation=suggestion.explanation + note + ".")
