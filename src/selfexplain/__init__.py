"""selfexplain: do large language models know why they answer as they do?"""

__version__ = "0.1.0"
