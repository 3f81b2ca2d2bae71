"""hypernb: reproduce, correct and extend *Gradient Descent: The Ultimate Optimizer*."""
__version__ = "0.1.0"

from . import optim  # noqa: E402

__all__ = ["optim", "__version__"]

from . import bench, data, models, study, viz, widgets  # noqa: E402
from .config import RunConfig  # noqa: E402
from .train import Result, run  # noqa: E402

__all__ += ["RunConfig", "Result", "run", "bench", "data", "models", "study", "viz", "widgets"]
