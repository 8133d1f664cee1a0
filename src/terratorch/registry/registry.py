"""Name → constructor registries, with lazily imported built-in entries.

A :class:`Registry` holds constructors registered with a decorator. Built-in entries are declared in
a manifest (name → module path) and their module is imported the first time the name is looked
up, so ``import terratorch.registry`` stays cheap. A :class:`MultiSourceRegistry` chains several
sources (ours, timm, smp) and resolves ``<prefix>_<name>`` to one source.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar, overload, runtime_checkable

from terratorch import choices

T = TypeVar("T", bound=Callable[..., Any])


class InvalidModelError(KeyError):
    """A name that no registry (or registry source) knows.

    It derives from ``KeyError`` so that ``except KeyError`` around a registry lookup (which the
    reference's plain-dict registries raise) keeps working, as does ``Mapping.get``.

    Two spellings are accepted:

    * ours: ``InvalidModelError(name, where, suggestions=(), hint="")`` builds a message naming the
      registry and listing close matches;
    * the reference's: ``InvalidModelError(message, model_name=None)``; the message is used as is, or
      a default one naming ``model_name`` when ``message`` is empty.

    Attributes:
        name: The unknown name (``model_name`` in the reference spelling; may be ``None``).
        suggestions: Close matches offered in the message.
    """

    def __init__(
        self,
        name: str | None = None,
        where: str | None = None,
        suggestions: Iterable[str] = (),
        hint: str = "",
        *,
        model_name: str | None = None,
        message: str | None = None,
    ) -> None:
        self.suggestions = list(suggestions)
        if where is None:  # the reference's (message, model_name=None) spelling
            self.name = model_name
            text = message or name or f"The model {model_name} isn't in the register."
        else:
            self.name = name
            text = f"Unknown name {name!r} in {where}."
            if self.suggestions:
                text += " Did you mean: " + ", ".join(repr(s) for s in self.suggestions) + "?"
            if hint:
                text += " " + hint
        super().__init__(text)

    def __str__(self) -> str:  # KeyError would otherwise show the repr of its argument
        return str(self.args[0])


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Return up to ``n`` candidates that look like ``name`` (case-insensitive).

    Kept under this name for existing callers; it is :func:`terratorch.choices.close_matches`.
    """
    return choices.close_matches(name, candidates, n=n)


def _before_lookup() -> None:
    # Imported here so that the registry module has no import-time dependency on the loader.
    from terratorch.registry.custom_modules import autoload_custom_modules

    autoload_custom_modules()


@runtime_checkable
class RegistrySource(Protocol):
    """What :class:`MultiSourceRegistry` needs from each of its sources."""

    def __contains__(self, name: object) -> bool: ...

    def __getitem__(self, name: str) -> Callable[..., Any]: ...

    def __iter__(self) -> Iterator[str]: ...

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any: ...


class BuildableRegistry(Protocol):
    """The reference's name for the minimal source contract (no ``__getitem__`` needed).

    :meth:`MultiSourceRegistry.build` and ``in`` work with such sources; ``find_class`` needs
    ``__getitem__`` as in :class:`RegistrySource`.
    """

    def __iter__(self) -> Iterator[str]: ...

    def __len__(self) -> int: ...

    def __contains__(self, name: str) -> bool: ...

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any: ...


class DecoderRegistry(BuildableRegistry, Protocol):
    """A decoder source; ``includes_head`` tells factories whether its decoders end in a head."""

    includes_head: bool


S = TypeVar("S")


class Registry(Mapping[str, Callable[..., Any]]):
    """A mapping from names to constructors (classes or functions).

    Args:
        name: Human-readable name used in error messages (e.g. ``"TERRATORCH_BACKBONE_REGISTRY"``).
        **elements: Initial entries, name → constructor (the reference's ``Registry(**elements)``).
    """

    def __init__(self, name: str = "registry", **elements: Callable[..., Any]) -> None:
        self.name = name
        self._entries: dict[str, Callable[..., Any]] = dict(elements)
        self._lazy: dict[str, str] = {}
        self._metadata: dict[str, dict[str, Any]] = {}

    # -- registration -------------------------------------------------------------------------
    @overload
    def register(self, constructor: T) -> T: ...

    @overload
    def register(
        self, constructor: None = None, *, name: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Callable[[T], T]: ...

    def register(self, constructor=None, *, name=None, metadata=None):
        """Register a class or function under its ``__name__`` (or ``name``) and return it unchanged.

        Usable bare (``@REG.register``) or with options (``@REG.register(name=..., metadata=...)``).
        Metadata (bands, mean/std, patch size, ...) can be read later without building anything; given
        here, it replaces the metadata a lazy declaration (:meth:`register_lazy`) made for the name.
        """

        def decorate(target: T) -> T:
            if not callable(target):
                raise TypeError(
                    f"{self.name}.register expects a class or a function, got {type(target).__name__} "
                    f"{target!r}."
                )
            key = name or getattr(target, "__name__", None)
            if not key:
                raise TypeError(f"Cannot register {target!r} in {self.name}: it has no __name__.")
            previous = self._entries.get(key)
            if previous is not None and previous is not target and not _same_definition(previous, target):
                warnings.warn(
                    f"{self.name}: {key!r} was registered by {_where(previous)} and is now replaced by "
                    f"{_where(target)}.",
                    stacklevel=3,
                )
            self._entries[key] = target
            self._lazy.pop(key, None)
            if metadata is not None:
                # declared next to the model: it replaces what a manifest declared for the lazy entry
                self._metadata[key] = dict(metadata)
            return target

        if constructor is None:
            return decorate
        return decorate(constructor)

    def register_lazy(self, name: str, module: str, **metadata: Any) -> None:
        """Declare that importing ``module`` registers ``name``; the import happens on first lookup."""
        if name not in self._entries:
            self._lazy[name] = module
        if metadata:
            self._metadata[name] = {**metadata, **self._metadata.get(name, {})}

    def unregister(self, name: str) -> Callable[..., Any] | None:
        """Remove ``name`` (eager or lazy) and return its constructor if it had been loaded."""
        self._lazy.pop(name, None)
        self._metadata.pop(name, None)
        return self._entries.pop(name, None)

    # -- lookup -------------------------------------------------------------------------------
    def _resolve(self, name: str) -> Callable[..., Any] | None:
        if name in self._entries:
            return self._entries[name]
        module = self._lazy.get(name)
        if module is None:
            return None
        importlib.import_module(module)
        if name not in self._entries:
            raise RuntimeError(
                f"{self.name}: module {module!r} was expected to register {name!r} but did not "
                f"(registered now: {sorted(self._entries)})."
            )
        return self._entries[name]

    def __getitem__(self, name: str) -> Callable[..., Any]:
        _before_lookup()
        if not isinstance(name, str):
            raise TypeError(f"{self.name} names are strings, got {type(name).__name__}.")
        found = self._resolve(name)
        if found is None:
            raise InvalidModelError(name, self.name, close_matches(name, self))
        return found

    def __contains__(self, name: object) -> bool:
        _before_lookup()
        return isinstance(name, str) and (name in self._entries or name in self._lazy)

    def __iter__(self) -> Iterator[str]:
        _before_lookup()
        yield from self._entries
        yield from (n for n in self._lazy if n not in self._entries)

    def __len__(self) -> int:
        _before_lookup()
        return len(self._entries.keys() | self._lazy.keys())

    def build(self, name: str, *constructor_args: Any, **constructor_kwargs: Any) -> Any:
        """Construct ``name`` with the given arguments.

        Errors raised by the constructor itself propagate unchanged; only an unknown name raises
        :class:`InvalidModelError`.
        """
        return self[name](*constructor_args, **constructor_kwargs)

    def metadata(self, name: str) -> dict[str, Any]:
        """Metadata declared for ``name`` (empty if none), read without importing or building."""
        if name not in self:
            raise InvalidModelError(name, self.name, close_matches(name, self))
        return dict(self._metadata.get(name, {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} entries)"


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _same_definition(a: Any, b: Any) -> bool:
    """True when ``b`` is a re-execution of the code that defined ``a`` (module reload, re-run)."""
    return _where(a) == _where(b) and getattr(a, "__module__", None) not in (None, "__main__")


class MultiSourceRegistry(Mapping[str, Any], Generic[S]):
    """Several registry sources searched in order, addressable by prefix.

    ``"<prefix>_<rest>"`` whose first ``_``-separated token is a source prefix is looked up in that
    source only; any other name is looked up in each source in order.

    Args:
        **sources: Prefix → source, in search order.

    The ``name`` attribute (used in error messages) can be set after construction. As in the
    reference, ``keys()`` gives the source prefixes, while iterating gives ``<prefix>_<name>``
    for every entry, and ``MultiSourceRegistry[SourceType]`` is valid in annotations.
    """

    def __init__(self, **sources: RegistrySource) -> None:
        self.name = "MultiSourceRegistry"
        self._sources: dict[str, RegistrySource] = dict(sources)

    def register_source(self, prefix: str, registry: RegistrySource) -> None:
        """Append a source; a prefix that is already used raises ``KeyError``."""
        if prefix in self._sources:
            # The first sentence is the reference's wording, which callers may match on.
            raise KeyError(f"Source for prefix {prefix} already exists. Registry: {self.name}.")
        self._sources[prefix] = registry

    @property
    def sources(self) -> dict[str, RegistrySource]:
        """The sources by prefix, in search order (a copy)."""
        return dict(self._sources)

    def _split(self, name: str) -> tuple[str, str] | None:
        prefix, sep, rest = name.partition("_")
        if sep and rest and prefix in self._sources:
            return prefix, rest
        return None

    def _locate(self, name: str) -> tuple[RegistrySource, str] | None:
        split = self._split(name)
        if split is not None:
            prefix, rest = split
            source = self._sources[prefix]
            return (source, rest) if rest in source else None
        for source in self._sources.values():
            if name in source:
                return source, name
        return None

    def _unknown(self, name: str, building: bool = False) -> InvalidModelError:
        split = self._split(name)
        if split is not None:
            prefix = split[0]
            candidates: list[str] = [f"{prefix}_{n}" for n in self._sources[prefix]]
            where = f"{self.name} (source {prefix!r})"
        else:
            candidates = list(self)
            for source in self._sources.values():
                candidates.extend(source)
            where = f"{self.name} (sources {list(self._sources)})"
        hint = f"Prefix a name with one of {list(self._sources)} to pick a source."
        if building:
            hint = f"The model {name} could not be instantiated from any source. {hint}"
        return InvalidModelError(name, where, close_matches(name, candidates), hint=hint)

    def find_registry(self, name: str) -> RegistrySource:
        """The source that holds ``name``."""
        found = self._locate(name)
        if found is None:
            raise self._unknown(name)
        return found[0]

    def find_class(self, name: str) -> Callable[..., Any]:
        """The constructor registered as ``name``."""
        found = self._locate(name)
        if found is None:
            raise self._unknown(name)
        source, rest = found
        return source[rest]

    def build(self, name: str, *constructor_args: Any, **constructor_kwargs: Any) -> Any:
        """Construct ``name`` through the source that holds it; constructor errors propagate.

        An unknown name raises :class:`InvalidModelError` whose message, like the reference's,
        says the model "could not be instantiated from any source".
        """
        found = self._locate(name)
        if found is None:
            raise self._unknown(name, building=True)
        source, rest = found
        return source.build(rest, *constructor_args, **constructor_kwargs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._locate(name) is not None

    def __getitem__(self, key: str) -> Any:
        """``registry[prefix]`` → that source; ``registry[name]`` → the constructor of ``name``."""
        if key in self._sources:
            return self._sources[key]
        return self.find_class(key)

    def __iter__(self) -> Iterator[str]:
        for prefix, source in self._sources.items():
            for name in source:
                yield f"{prefix}_{name}"

    def __len__(self) -> int:
        return sum(len(list(source)) for source in self._sources.values())

    def keys(self) -> Any:  # type: ignore[override]
        """The source prefixes, in search order (what the reference returns)."""
        return self._sources.keys()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, sources={list(self._sources)})"


def explore_model_card(model_address: str) -> None:
    """Print the Hugging Face model card of ``model_address`` (e.g. ``"ibm-nasa-geospatial/..."``).

    Needs ``huggingface_hub``, ``rich`` and network access; both are imported only here.
    """
    from huggingface_hub import ModelCard
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(ModelCard.load(model_address).content))
