"""The recipe: a complete config read off a converted data set, and why (what `tfxc.train --train` trains).

* `profile`: what the recipe reads of the data (`DataProfile`);
* `chain`: a rule is a small pure function `(profile, config, context) -> (config, reasons)`, and a
  chain of them runs in order, a later reason replacing the earlier one of its topic (`Reason`);
* `rules`: the recipe's own rules (`RECIPE`: head, encoder, length, selection, ...);
* `points`: its points along the speed–accuracy frontier, `fast`, `default`, `best` and `xrt`, each a
  chain of rules (`POINTS`), and `recipe_config`, the config of one for converted data;
* `xrt`: the rule that makes the recipe XR-Transformer, for text.
"""

from tfxc.recipe.chain import Context, Reason
from tfxc.recipe.points import POINTS, recipe_config
from tfxc.recipe.profile import DataProfile
from tfxc.recipe.rules import RECIPE, choose

__all__ = ["Context", "DataProfile", "POINTS", "RECIPE", "Reason", "choose", "recipe_config"]
