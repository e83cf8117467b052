"""The plan stage: campaign file → contacts → phones → render → segments → pricing → plan.

Nothing here sends, journals or writes reports; everything downstream reads the plan.
"""
