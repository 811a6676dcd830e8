"""Attribute mappings: how a source object becomes the attributes a target receives."""
