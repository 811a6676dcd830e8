"""The functions of the expression language: `registry.FUNCTIONS` names them, the other modules hold
them by family (strings, dates, logic, lists, replace, generated, unique) over the values of `values`.

Names, argument order and 1-based positions follow Microsoft's "Reference for writing expressions for
attribute mappings", so an expression copied from the cloud product gives the same result here. Values
are None (absent), str, int, float, bool, `datetime` (from CDate, Now, DateAdd, DateFromNum; shown as
`M/d/yyyy h:mm:ss tt` in UTC, like the product) or a list (a multi-valued attribute). String functions
apply to each value of a list. Where the documentation is silent, a null input gives a null output, so
`Coalesce` and a mapping's `default` can still step in. The .NET date formats and regular expressions
that some functions take are translated by `engine.mapping.dotnet`.
"""
