"""The functions of the expression language, by family, and the registry that names them."""
