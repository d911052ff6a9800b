"""The five seed papers' claims (:mod:`workbench.replications`) as model-free benchmarks:
``replication.{lindsay,spoerer,hartmann,crcn,nayebi}``."""

from ..scores import Scores
from .base import Benchmark, Panel
from .registry import register


class ReplicationPanel(Panel):
    title = "Replications of the seed papers"
    explanation = ("Each claim of a seed paper re-run on the embedded default at fixed sizes and seeds: the "
                   "measured effect with its 95 % confidence interval (ci_method: what was resampled, or why "
                   "there is none), its p-value and whether the claim held at this scale. Claims that do not "
                   "hold are reported as such, never tuned. The source column names the paper each "
                   "claim comes from.")
    columns = ("benchmark", "claim", "source", "value", "ci_low", "ci_high", "ci_method", "p_value", "verdict")


def _names():
    from ..replications import REPLICATIONS

    return tuple(f"replication.{name}" for name in REPLICATIONS)


@register
class Replication(Benchmark):
    """One seed paper's claims, each a score with its effect, p-value and verdict."""

    names = _names()
    version = "3"  # 2: the papers' metric definitions, calibrated noise, trained feedforward control; 3: CIs
    in_demo = True
    model_free = True
    panel = ReplicationPanel
    units = "effect"

    def required_models(self):
        """The zoo models this replication trains (prepared before its task, side by side
        with other work) and, for Nayebi's, the simulated recording's trained brain."""
        from ..replications import required_models

        return required_models(self.identifier.split(".", 1)[1])

    def run(self, model_spec=None):
        from .. import replications

        replications.use_model_cache(self.cache_dir / "models")
        findings = replications.run_replication(self.identifier.split(".", 1)[1])
        return Scores(finding.record() for finding in findings), {}
