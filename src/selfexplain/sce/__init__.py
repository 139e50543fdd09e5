"""The sce study: self-generated counterfactual explanations on tabular grids."""
