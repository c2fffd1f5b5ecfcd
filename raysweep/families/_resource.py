"""What one training step of a family's model adds: trees, boosting rounds, epochs, a row share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """What one training step adds to a trial (trees, boosting rounds, epochs, a row fraction)."""

    name: str
    per_step: float
    max: float

    @property
    def max_steps(self) -> int:
        """How many steps a trial takes to reach the maximum resource."""
        return max(1, int(round(self.max / self.per_step)))

    def at(self, steps: int) -> float:
        """The amount of resource after ``steps`` steps."""
        amount = steps * self.per_step
        return int(round(amount)) if float(self.per_step).is_integer() else round(amount, 6)
