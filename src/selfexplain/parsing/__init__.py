"""Study-neutral reading of model replies: thinking blocks, tolerant JSON, option labels and numbers.

Both studies parse messy text the same way, so the pieces live here once; each study's own parser (`sce.parsing`,
`simulatability.parsing`) only adds what its answers mean.
"""
