"""The one exception family edgebrew raises.

Every failure a user can cause (a bad file, a bad shape, an unsupported layer) is an
``EdgebrewError`` whose message names the file, line, layer or field involved, so the CLI can print
it and exit without a traceback.
"""


class EdgebrewError(Exception):
    """Base class of every error edgebrew raises on purpose."""


class ModelFormatError(EdgebrewError):
    """A prototxt, caffemodel or binaryproto that cannot be parsed (syntax, truncation, corruption)."""


class PrototxtSyntaxError(ModelFormatError):
    """A prototxt with a text-format syntax error; carries the file and line."""

    def __init__(self, path, line, message):
        self.path, self.line = str(path), line
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


class WeightsError(EdgebrewError):
    """Weights that are missing, of the wrong shape, or do not match their checksum."""


class UnsupportedLayerError(EdgebrewError):
    """A layer type edgebrew cannot run in a deploy runtime (Python, loss, unknown types)."""


class GraphError(EdgebrewError):
    """A graph that is not well formed: dangling inputs, duplicate producers, cycles, bad attributes."""


class ShapeError(EdgebrewError):
    """Shapes that do not fit together (shape inference or a fed input)."""


class InputError(EdgebrewError):
    """Bad arguments from the caller: unknown input names, wrong shapes or dtypes of fed arrays."""
