"""The simulatability study: can a predictor foresee a model's answers on counterfactuals from its self-explanations?"""
