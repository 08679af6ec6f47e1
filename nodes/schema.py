"""One declarative way to write the pack's nodes in ComfyUI's V3 schema (``comfy_api.latest.io``).

A node is a class with a docstring (its description in ComfyUI), a few class attributes and an
``execute`` classmethod; :class:`UnityNode` turns the attributes into the ``io.Schema`` that
``define_schema`` must return, so no node repeats that ceremony::

    from comfy_api.latest import io
    from .schema import UnityNode, out

    class UnityVideoModalityEncode(UnityNode):
        \"\"\"Modality values -> the visualisation video UnityVideo consumes.\"\"\"

        DISPLAY = "UnityVideo Modality Encode"
        GROUP = "modalities"                       # -> category "UnityVideo/modalities"
        INPUTS = [VALUES.Input("values", tooltip="..."),
                  io.Int.Input("width", default=64, min=16, max=4096, step=16, tooltip="...")]
        OUTPUTS = [out(io.Image, "visualisation", "...")]

        @classmethod
        def execute(cls, values, width) -> io.NodeOutput:
            return io.NodeOutput(...)

Declarations (class attributes; the names avoid the properties ``io.ComfyNode`` already has):

- ``DISPLAY`` (str): the menu name; it starts with "UnityVideo".
- ``GROUP`` (str): the category below ``UnityVideo/``, e.g. ``loaders``, ``conditioning``, ``codec``,
  ``modalities``, ``video``, ``explore``.
- ``INPUTS`` / ``OUTPUTS``: sequences of ``io`` inputs / outputs, in socket order. An entry may also be
  a zero-argument callable returning one, for lists read when ComfyUI asks for the schema (files in
  the input folder). Every input and output needs a tooltip: a missing one raises TypeError naming
  the node and the socket when the schema is built (at registration, so never in a user's graph).
- ``HIDDEN``: ``io.Hidden`` members the node reads while it runs, through
  :meth:`UnityNode.hidden_value` (e.g. ``io.Hidden.unique_id`` -> ``cls.hidden_value("unique_id")``).
- ``IS_OUTPUT`` (bool): an output node (saves files, shows previews).
- ``NODE_ID`` (str, optional): defaults to the class name. Saved workflows name nodes by id, so an
  id never changes once released.

Everything else is plain ``io.ComfyNode``: ``validate_inputs`` (checks when a prompt is queued),
``fingerprint_inputs`` (when a cached result is stale) and ``check_lazy_status`` are written as
ComfyUI documents them.

The node id is fixed when the class is created, so the class clones ComfyUI makes to run a node
(``<Name>Clone``) keep it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, ClassVar, Sequence, Union

from comfy_api.latest import io

CATEGORY_ROOT = "UnityVideo"

InputEntry = Union[io.Input, Callable[[], io.Input]]
OutputEntry = Union[io.Output, Callable[[], io.Output]]


def out(kind: type, name: str, tooltip: str, **options: Any) -> io.Output:
    """An output socket of ``kind`` (``io.Image``, ``io.Latent``, a custom type from
    :mod:`nodes.common`) shown as ``name`` (V1's ``RETURN_NAMES``). Its id is left to ComfyUI (as
    core's nodes do), so an output may be named like an input (``positive`` in, ``positive`` out)."""
    return kind.Output(display_name=name, tooltip=tooltip, **options)


class UnityNode(io.ComfyNode):
    """Base of every node of the pack: builds ``io.Schema`` from the class declarations (see the
    module docstring) and checks that each socket has a tooltip."""

    NODE_ID: ClassVar[str] = ""
    DISPLAY: ClassVar[str] = ""
    GROUP: ClassVar[str] = ""
    INPUTS: ClassVar[Sequence[InputEntry]] = ()
    OUTPUTS: ClassVar[Sequence[OutputEntry]] = ()
    HIDDEN: ClassVar[Sequence[io.Hidden]] = ()
    IS_OUTPUT: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "NODE_ID" not in cls.__dict__:  # clones copy the class dict, so they keep the original id
            cls.NODE_ID = cls.__name__

    @classmethod
    def define_schema(cls) -> io.Schema:
        """The V3 schema from the declarations.

        Raises:
            TypeError: a declaration is missing (``DISPLAY``, ``GROUP``) or a socket has no tooltip.
        """
        if not cls.DISPLAY or not cls.GROUP:
            raise TypeError(f"node {cls.NODE_ID} must declare DISPLAY and GROUP")
        inputs = [entry() if callable(entry) and not isinstance(entry, io.Input) else entry for entry in cls.INPUTS]
        outputs = [entry() if callable(entry) and not isinstance(entry, io.Output) else entry for entry in cls.OUTPUTS]
        for kind, sockets in (("input", inputs), ("output", outputs)):
            for socket in sockets:
                if not getattr(socket, "tooltip", None):
                    raise TypeError(f"node {cls.NODE_ID}: {kind} {socket.id!r} has no tooltip; every socket needs one")
        return io.Schema(
            node_id=cls.NODE_ID,
            display_name=cls.DISPLAY,
            category=f"{CATEGORY_ROOT}/{cls.GROUP}",
            description=inspect.cleandoc(cls.__doc__ or ""),
            inputs=inputs,
            outputs=outputs,
            hidden=list(cls.HIDDEN) or None,
            is_output_node=cls.IS_OUTPUT,
        )

    @classmethod
    def hidden_value(cls, name: str) -> Any:
        """A hidden input (``"unique_id"``, ``"prompt"`` ...) while ComfyUI runs the node; None when
        the node is called directly (tests, scripts)."""
        holder = getattr(cls, "hidden", None)
        return getattr(holder, name, None) if holder is not None else None
