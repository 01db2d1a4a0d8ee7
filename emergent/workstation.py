"""The composition root: settings -> stores -> providers -> services.

``Workstation.open()`` is the one place that reads configuration. Services receive their stores and
providers in their constructors and are built lazily on first use, so a notebook that only needs
memory never imports the tool or graph machinery. No service receives the Workstation: each gets
its stores, the one auditor (``audit``), the principal directory (``principals``) and, where it
needs more, a narrow callable built here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emergent.clock import Clock, SystemClock
from emergent.config import Settings, load_settings
from emergent.errors import StoreUnavailableError

if TYPE_CHECKING:  # pragma: no cover - each service is imported when first used (import emergent stays light)
    from emergent.agents.service import Agents
    from emergent.assistant import Assistant
    from emergent.assistant.store import RunStore
    from emergent.audit import AuditLog
    from emergent.autonomy.service import Autonomy
    from emergent.browser.session import BrowserService
    from emergent.experiments.service import Experiments
    from emergent.graph.service import KnowledgeGraph
    from emergent.jobs.service import JobService
    from emergent.memory.service import Memory
    from emergent.memory.stm import STM
    from emergent.principals import Principal, Principals
    from emergent.proposals.service import Proposals
    from emergent.providers.embeddings import CachedEmbedder
    from emergent.providers.llm import ChatModel
    from emergent.security.crypto import KeyRing
    from emergent.security.retention import Retention
    from emergent.security.tokens import ApiTokens
    from emergent.stores.lance import LanceStore
    from emergent.stores.sql import SQLStore
    from emergent.tools.service import ToolService
    from emergent.workflows.service import Workflows
    from emergent.workspace.backup import BackupInfo, RestoreReport, WorkspaceStores

#: what survives a restore: nothing in them refers to the files a restore replaces. The principal
#: directory must survive: its seal key lives only in memory, so principals issued before the
#: restore (``ws.principal``, an agent's) stay valid after it.
_KEEP_ON_RESTORE = frozenset({"embedder", "redis", "llm", "principals", "principal"})


def _prepare(path: Path, *, create: bool) -> None:
    """Check the workspace directory: a file there, or a missing one we may not create, is an error."""
    from emergent.errors import ConfigError, NotFoundError

    if path.exists() and not path.is_dir():
        raise ConfigError(f"workspace {path} is a file, not a directory",
                          hint="point --home / EMERGENT_HOME at a directory (a new one is created with "
                               "`emergent init DIR`)", path=str(path))
    if not path.exists():
        if not create:
            raise NotFoundError(f"workspace {path} does not exist",
                                hint=f"create it with `emergent init {path}` (or add --create), or check the "
                                     "path", path=str(path))
        try:
            # a new workspace is its owner's alone: memories (LanceDB files too), approvals and the audit
            # trail are not for the machine's other users, nor for the user a sandboxed run is dropped to
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create workspace {path}: {exc.strerror}",
                              hint="choose a directory you may write", path=str(path)) from None


def _sqlite_file(path: Path) -> bool:
    """True when ``path`` exists and is not empty (the full checks run when it is opened). A stat, never
    an open: closing any descriptor of a SQLite file drops every POSIX lock this process holds on it
    (emergent.stores.sql.check_sqlite_file), and a job's kernel may be writing it meanwhile."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


class Deferred:
    """Stands for a service of the workstation until its first use, then forwards to it."""

    __slots__ = ("_factory", "_target")

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._target: Any = None

    def resolve(self) -> Any:
        if self._target is None:
            self._target = self._factory()
        return self._target

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        return f"Deferred({self._target!r})" if self._target is not None else "Deferred(<not opened>)"


class Workstation:
    def __init__(self, settings: Settings, *, clock: Clock | None = None, create: bool = True) -> None:
        self.settings = settings
        self.path: Path = settings.workspace()
        _prepare(self.path, create=create or settings.home is None)
        self.clock = clock or SystemClock()
        self._closers: list[Any] = []
        self._assistants: dict[Any, Any] = {}
        from emergent.workspace.journal import on_open

        self.recovered = on_open(self.path, self._stores)  # an interrupted restore: recovered before stores open

    @classmethod
    def open(cls, path: str | Path | None = None, *, clock: Clock | None = None, create: bool = True,
             **overrides: Any) -> Workstation:
        """Open the workspace at ``path`` or ``EMERGENT_HOME`` (created when missing, unless
        ``create=False``: then a missing directory is an error; the default user-data workspace is
        always created)."""
        return cls(load_settings(path, **overrides), clock=clock, create=create)

    # ------------------------------------------------------------------ stores
    @functools.cached_property
    def sql(self) -> SQLStore:
        from emergent.workspace.integrity import open_sql  # refuses a vanished or emptied database

        store: SQLStore = open_sql(self.path, self.settings.database_url)
        return store

    @functools.cached_property
    def lance(self) -> LanceStore:
        from emergent.stores.lance import LanceStore

        return LanceStore(self.settings.lance_uri or self.path / "lance",
                          storage_options=self.settings.lance_storage_options or None)

    @functools.cached_property
    def redis(self) -> Any | None:
        """A redis-py client when ``EMERGENT_REDIS_URL`` is set, else None (embedded stores)."""
        url = self.settings.redis_url
        if not url:
            return None
        from emergent.stores import redis as r

        client = r.connect(url)
        h = r.health(client)
        if not h.ok and self.settings.stm_fallback != "ltm":
            raise StoreUnavailableError(
                f"Redis at {r.redact_url(url)} did not answer: {h.detail}",
                hint="start Redis, or unset EMERGENT_REDIS_URL to use the embedded short-term memory",
            )
        return client

    @property
    def redis_namespace(self) -> str:
        from emergent.stores.redis import namespace

        return namespace(self.settings.workspace_id or str(self.path))

    # ------------------------------------------------------------------ providers
    @functools.cached_property
    def embedder(self) -> CachedEmbedder:
        from emergent.providers.embeddings import CachedEmbedder, get_embedder

        s = self.settings
        spec = s.embedder
        if spec == "auto":  # the workspace records the embedder that built it: every entry point reopens with it
            recorded = self.recorded_embedder()
            if recorded:
                from emergent.providers.embeddings import embedder_spec

                spec = embedder_spec(recorded)
        opts: dict[str, Any] = {}
        if spec.startswith("openai"):
            opts = {"base_url": s.embed_base_url or s.llm_base_url, "api_key": s.embed_api_key or s.llm_api_key}
        return CachedEmbedder(get_embedder(spec, **opts), max_mb=s.embed_cache_mb)

    def recorded_embedder(self) -> str | None:
        """The id of the embedder the workspace's long-term memory was built with (None when new)."""
        if self.settings.lance_uri is None and not (self.path / "lance").exists():
            return None
        recorded = self.lance.get_meta().get("embedder")
        return str(recorded) if recorded else None

    @functools.cached_property
    def llm(self) -> ChatModel | None:
        """The configured ChatModel, or None (services then use their deterministic strategies)."""
        from emergent.providers.llm import get_chat_model

        s = self.settings
        return get_chat_model(s.llm_model, base_url=s.llm_base_url, api_key=s.llm_api_key)

    # ------------------------------------------------------------------ services
    def open_stm(self) -> STM:
        """A new short-term memory of the configured backend (``EMERGENT_STM_BACKEND``; ``auto``:
        Redis with ``EMERGENT_REDIS_URL``, else the embedded file ``stm.db`` in the workspace, shared
        by every process that opens it), through the registry of backends."""
        from emergent.memory.stm import STM_BACKENDS, STMContext

        name = self.settings.stm_backend
        if name == "auto":
            name = "redis" if self.settings.redis_url else "sqlite"
        factory = STM_BACKENDS.get(name)
        redis = self.redis if name == "redis" else None
        return factory(STMContext(self.path, self.settings.memory.stm_max_items, self.clock.now, redis=redis,
                                  namespace=self.redis_namespace, cipher=self._cipher("memory.stm")))

    def _cipher(self, purpose: str) -> Any:
        """AES-GCM sealing for ``purpose`` (emergent.security.crypto) when EMERGENT_SECURITY__ENCRYPT is on,
        else None (memory then stores plaintext, as before; the keyring is not even opened)."""
        return self.keyring.cipher(purpose) if self.settings.security.encrypt else None

    @functools.cached_property
    def memory(self) -> Memory:
        from emergent.memory.ltm import LongTermMemory
        from emergent.memory.service import Memory
        if self.settings.gc_freeze:
            from emergent.memory.service import freeze_startup_heap

            freeze_startup_heap()
        from emergent.memory.stm import FallbackSTM
        from emergent.stores.lance import IndexPolicy

        cfg = self.settings.memory
        backend = self.open_stm()
        self._closers.insert(0, backend.close)
        ltm = LongTermMemory(self.lance, self.embedder.id, self.embedder.dim, compress_above=cfg.compress_above_bytes,
                             policy=IndexPolicy(ann_threshold=cfg.ann_index_threshold),
                             hot_exact_max=cfg.hot_exact_max_rows, hot_ef_search=cfg.hot_ef_search,
                             hot_snapshot_dir=None if self.settings.lance_uri else self.path / "cache" / "hot",
                             cipher=self._cipher("memory.ltm"))
        # What an unreachable short-term memory means is decided here, once: an error, or (declared)
        # a durable write to long-term memory instead.
        stm = FallbackSTM(backend, self.settings.stm_fallback, ltm_writer=lambda rec: ltm.add([rec], now=self.clock.now()))
        # SQL, the audit trail and the principals directory are opened when memory first needs them
        # (a write's audit entry, an operation log flush): a new process's first recall does not.
        # A new workspace creates its database now, and a missing or emptied one is refused now (the
        # integrity checks of emergent.workspace.integrity); a sound one is opened on first use.
        if self.settings.database_url or not _sqlite_file(self.path / "emergent.db"):
            _ = self.sql
        mem = Memory(stm, ltm, self.embedder, cfg, clock=self.clock, sql=Deferred(lambda: self.sql),
                     audit=Deferred(lambda: self.audit), principals=Deferred(lambda: self.principals))
        # a rewind could bring back what an erasure that has not finished already took from the live table
        mem.rewind_guards.append(lambda: self.retention.refuse_while_unfinished("rewind long-term memory"))
        mem.erased_among = lambda ids: self.retention.erased_among(ids)
        self._closers.insert(0, mem.close)
        return mem

    @functools.cached_property
    def graph(self) -> KnowledgeGraph:
        """The knowledge graph (emergent.graph), following memory and fused into recall as configured."""
        from emergent.graph import KnowledgeGraph

        cfg = self.settings.graph
        llm = self.llm if cfg.extractor in ("auto", "llm") else None
        kg = KnowledgeGraph(self.sql, self.lance, self.embedder, clock=self.clock, llm=llm, audit=self.audit,
                            principals=self.principals)
        if cfg.follow_memory or cfg.recall:
            kg.attach(self.memory, weight=cfg.recall_weight, retriever=cfg.recall, listen=cfg.follow_memory)
        return kg

    @functools.cached_property
    def jobs(self) -> JobService:
        """Scheduled notebook jobs (emergent.jobs): define, run, pause, history.

        A failed run's Slack / email notification calls the tool as the run's principal (the
        scheduler's, for a scheduled run), never waiting for an approval."""
        from emergent.jobs.notify import Notifier
        from emergent.jobs.service import JobService

        def call_tool(principal: Any, tool: str, args: dict[str, Any]) -> Any:
            return self.tools.call(tool, args, principal=principal, wait=False)

        return JobService(self.sql, self.path, clock=self.clock, notifier=Notifier(call_tool), audit=self.audit,
                          principals=self.principals)

    @property
    def scheduler_principal(self) -> Principal:
        """``service:scheduler``: who the scheduler acts as (issued here, at the composition root)."""
        return self.principals.service("scheduler")

    @functools.cached_property
    def experiments(self) -> Experiments:
        """Config registry + A/B experiments (emergent.experiments); adoption goes through the autonomy gate.

        A current ``memory`` config version, when one exists, is applied to ``ws.memory`` here and on change.
        """
        from emergent.experiments.gate import Gate
        from emergent.experiments.registry import ConfigRegistry
        from emergent.experiments.service import Experiments

        gate = Gate(self.autonomy)
        registry = ConfigRegistry(self.sql, clock=self.clock, audit=self.audit, principals=self.principals)

        def apply_memory(cfg: Any) -> None:
            self.settings.memory = cfg
            if "memory" in self.__dict__:
                self.memory.config = cfg

        registry.on_change("memory", apply_memory)
        if any(v.namespace == "memory" for v in registry.versions("memory")):
            apply_memory(registry.values("memory"))
        return Experiments(self.sql, registry, clock=self.clock, gate=gate, audit=self.audit)

    @functools.cached_property
    def proposals(self) -> Proposals:
        """Signals → proposals → approval (emergent.proposals); written by ``llm`` when configured.

        The analyzers read other services through their read methods (wired here, each service
        built only when an analyzer first reads it), never through their tables."""
        from emergent.proposals.impact import past_experiments
        from emergent.proposals.service import Proposals
        from emergent.proposals.signals import Sources

        def memory_ops(since: float) -> list[dict[str, Any]]:
            from emergent.memory.analytics import operation_totals

            return operation_totals(self.sql, since)

        exp = self.experiments
        sources = Sources(tool_calls=lambda since: self.tools.telemetry.window(since),
                          tool_latencies=lambda tool, since: self.tools.telemetry.latencies(tool, since),
                          memory_ops=memory_ops, approvals=lambda since: self.autonomy.approvals.decided(since),
                          job_runs=lambda since: self.jobs.run_totals(since),
                          experiments=functools.partial(past_experiments, exp))
        return Proposals(self.sql, clock=self.clock, llm=self.llm, gate=exp.gate, registry=exp.registry,
                         audit=self.audit, sources=sources)

    # ------------------------------------------------------------------ self-improvement
    def self_improvement_agent(self) -> Principal:
        """The ``agent:self-improvement`` principal the improvement cycle acts as (so what it
        proposes or adopts goes through the gate). A human running it the first time creates it;
        a service (the scheduler) can use it once it exists, or when ``[agents]`` names it."""
        from emergent.errors import PrincipalError
        from emergent.experiments.gate import SELF_IMPROVEMENT

        try:
            return self.principals.agent(SELF_IMPROVEMENT)
        except PrincipalError:
            if not self.principal.is_human:
                raise PrincipalError(f"agent {SELF_IMPROVEMENT!r} does not exist yet and {self.principal.key} may not "
                                     "create it", hint="run `emergent improve run` once yourself, or add "
                                     f"agents = [\"{SELF_IMPROVEMENT}\"] to emergent.toml") from None
            return self.principals.agent(SELF_IMPROVEMENT, created_by=self.principal)

    def self_improvement(self, **kwargs: Any) -> dict[str, Any]:
        """One self-improvement run (emergent.experiments.improve) as the self-improvement agent."""
        from emergent.experiments.improve import run_self_improvement

        return run_self_improvement(proposals=self.proposals, experiments=self.experiments, embedder=self.embedder,
                                    clock=self.clock, principal=self.self_improvement_agent(), **kwargs)

    def improvement_status(self) -> dict[str, Any]:
        """Current config versions, open experiments and proposals, the last cycle."""
        from emergent.experiments.improve import status

        return status(experiments=self.experiments, proposals=self.proposals)

    @functools.cached_property
    def audit(self) -> AuditLog:
        """The audit trail (emergent.audit.AuditLog): hash chain in SQL, head anchored outside it."""
        import hashlib

        from emergent.audit import AuditLog, HeadAnchor

        name = hashlib.sha256(str(self.path).encode()).hexdigest()[:16]
        # with encryption on, what people and tools said (questions, arguments, answers, results) is sealed in
        # the trail; the keyring is opened at the first entry that holds such a field (it audits to this log)
        cipher = Deferred(lambda: self.keyring.cipher("sql.audit")) if self.settings.security.encrypt else None
        return AuditLog(self.sql, clock=self.clock, anchor=HeadAnchor(self.settings.audit_anchor_dir(), name),
                        cipher=cipher)

    @functools.cached_property
    def principals(self) -> Principals:
        """Who may act here (emergent.principals.Principals): issues principals, keeps their roles."""
        from emergent.principals import Principals

        s = self.settings
        config: dict[str, dict[str, Any]] = {f"agent:{name}": {"roles": []} for name in s.agents}
        for key, roles in s.roles.items():
            config.setdefault(key, {"roles": []})["roles"] = list(roles)
        return Principals(self.sql, clock=self.clock, audit=self.audit, config=config)

    @functools.cached_property
    def principal(self) -> Principal:
        """The principal of this process: the OS user at the keyboard, or less (``EMERGENT_PRINCIPAL``:
        a service or a configured agent, e.g. the scheduler running a job's notebook)."""
        from emergent.errors import ConfigError
        from emergent.principals import parse_key

        wanted = self.settings.principal
        if not wanted:
            return self.principals.os_user()
        kind, name = parse_key(wanted)
        if kind == "service":
            return self.principals.service(name)
        if kind == "agent":
            return self.principals.agent(name)
        raise ConfigError(f"EMERGENT_PRINCIPAL={wanted!r} names a human",
                          hint="a process is the OS user's by default; the setting only lowers trust "
                               "(service:NAME or agent:NAME)")

    @functools.cached_property
    def autonomy(self) -> Autonomy:
        """The autonomy gate (emergent.autonomy): permission matrix, approvals, overrides, pause."""
        from emergent.autonomy.approvals import ApprovalQueue
        from emergent.autonomy.service import Autonomy

        approvals = ApprovalQueue(self.sql, principals=self.principals, clock=self.clock, audit=self.audit,
                                  default_ttl=self.settings.tools.approval_ttl_s,
                                  cipher=self._cipher("sql.approvals"))
        gate = Autonomy(self.sql, clock=self.clock, audit=self.audit, principals=self.principals,
                        approvals=approvals)
        self._closers.insert(0, gate.close)
        return gate

    @functools.cached_property
    def tools(self) -> ToolService:
        """Tools (emergent.tools): versioned registry, runner through the autonomy gate, sandbox."""
        from emergent.tools.service import ToolService, ToolServices

        svc = ToolService(self.sql, autonomy=self.autonomy, settings=self.settings, workspace=self.path,
                          services=ToolServices(memory_provider=lambda: self.memory,
                                                browser_provider=lambda: self.browser), clock=self.clock)
        self._closers.insert(0, svc.close)
        return svc

    # ------------------------------------------------------------------ the assistant
    def assistant(self, name: str = "assistant", **spec: Any) -> Assistant:
        """The assistant ``name`` (emergent.assistant): an agent principal with its own memory scope that
        recalls, asks the configured model (or works offline), and acts through the gate.

        The first time, the human at the keyboard creates its principal; a service or an agent process
        can use it once it exists, or when ``[agents]`` in emergent.toml names it. ``spec``: the
        fields of :class:`~emergent.assistant.AssistantSpec` (instructions, tools, scope, budget, ...)."""
        from emergent.assistant import Assistant, AssistantSpec
        from emergent.errors import PrincipalError

        key = (name, tuple(sorted((k, repr(v)) for k, v in spec.items())))
        hit = self._assistants.get(key)
        if hit is not None:
            return hit
        try:
            principal = self.principals.agent(name)
        except PrincipalError:
            if not self.principal.is_human:
                raise PrincipalError(f"assistant {name!r} does not exist yet and {self.principal.key} may not create "
                                     "it", hint=f"a person opens it once (ws.assistant({name!r})), or add "
                                                f"agents = [\"{name}\"] to emergent.toml") from None
            principal = self.principals.agent(name, created_by=self.principal)
        bot = Assistant(AssistantSpec(name=name, **spec), principal=principal, tools=self.tools, memory=self.memory,
                        runs=self.assistant_runs, approvals=self.autonomy.approvals, audit=self.audit,
                        autonomy=self.autonomy, llm=self.llm, clock=self.clock)
        self._assistants[key] = bot
        return bot

    @functools.cached_property
    def assistant_runs(self) -> RunStore:
        """The assistants' runs and checkpoints in SQL (emergent.assistant.store)."""
        from emergent.assistant.store import RunStore

        return RunStore(self.sql, clock=self.clock, cipher=self._cipher("sql.assistant_runs"))

    # ------------------------------------------------------------------ workflows and agents
    @functools.cached_property
    def workflows(self) -> Workflows:
        """Workflows (emergent.workflows): DAGs of tool calls, notebook runs, assistant tasks and
        sub-workflows, run event by event, checkpointed in SQL, on threads or a Dask cluster."""
        from emergent.workflows.service import StepServices, Workflows

        cfg = self.settings.workflows
        def assistant(name: str, **spec: Any) -> Any:  # a factory, not the Workstation's bound method
            return self.assistant(name, **spec)

        svc = Workflows(self.sql, services=StepServices(tools=self.tools, assistant=assistant,
                                                        principals=self.principals),
                        audit=self.audit, clock=self.clock, executor=cfg.executor, max_workers=cfg.max_workers,
                        workspace=self.path)
        self._closers.insert(0, svc.close)
        return svc

    @functools.cached_property
    def browser(self) -> BrowserService:
        """Browser automation (emergent.browser): Playwright sessions on this machine's Chromium behind
        the host allow-list, recorded scripts replayed with self-healing locators, extraction to polars."""
        from emergent.browser.session import BrowserService

        cfg = self.settings.browser
        svc = BrowserService(self.sql, audit=self.audit, clock=self.clock, workspace=self.path,
                             autonomy=self.autonomy, executable=cfg.executable, headless=cfg.headless,
                             allow_hosts=tuple(cfg.allow_hosts),
                             secrets={k: v.get_secret_value() for k, v in cfg.secrets.items()},
                             timeout_ms=cfg.timeout_ms, navigation_timeout_ms=cfg.navigation_timeout_ms,
                             trace=cfg.trace, max_sessions=cfg.max_sessions, llm=lambda: self.llm)
        self._closers.insert(0, svc.close)
        return svc

    @functools.cached_property
    def agents(self) -> Agents:
        """Agents (emergent.agents): assistants with cards that talk over a bus (in the process or Redis
        Streams), delegate by contract net, vote, and resolve conflicts by a stated rule."""
        from emergent.agents.service import Agents

        choice = self.settings.agent_bus
        if choice == "auto":
            choice = "redis" if self.settings.redis_url else "memory"
        secret = self.settings.agent_bus_secret
        svc = Agents(self.sql, bus=choice, redis=self.redis if choice == "redis" else None,
                     namespace=self.redis_namespace, assistant=lambda name, **spec: self.assistant(name, **spec),
                     autonomy=self.autonomy,
                     principals=self.principals, audit=self.audit, clock=self.clock,
                     bus_secret=secret.get_secret_value().encode() if secret else None)
        self._closers.insert(0, svc.close)
        return svc

    # ------------------------------------------------------------------ API, security, compliance
    @functools.cached_property
    def tokens(self) -> ApiTokens:
        """API tokens (emergent.security.tokens): stored hashed, each mapped to a principal and a role
        (admin, operator, viewer, agent), expiring and revocable."""
        from emergent.security.tokens import ApiTokens

        return ApiTokens(self.sql, principals=self.principals, audit=self.audit, clock=self.clock,
                         max_ttl_s=self.settings.api.token_max_ttl_days * 86400.0)

    @functools.cached_property
    def keyring(self) -> KeyRing:
        """Envelope encryption (emergent.security.crypto): data keys in SQL wrapped by the key-encryption
        key (EMERGENT_SECURITY__KEK or its file), AES-GCM; rotation re-wraps the data keys."""
        from emergent.security.crypto import KeyRing, finish_interrupted_rotation, load_kek

        sec = self.settings.security
        kek_file = sec.kek_file or self.settings.audit_anchor_dir() / "kek"
        kek = load_kek(sec.kek.get_secret_value() if sec.kek else None, kek_file)
        if sec.kek is None:  # a rotation killed between its commit and its rename is finished here
            kek = finish_interrupted_rotation(self.sql, kek_file, kek)
        return KeyRing(self.sql, kek=kek, audit=self.audit, clock=self.clock, principals=self.principals)

    @functools.cached_property
    def retention(self) -> Retention:
        """Retention policies, the purge job and right-to-erasure (emergent.security.retention)."""
        from emergent.security.retention import Retention

        return Retention(self.sql, memory=self.memory, audit=self.audit, clock=self.clock,
                         principals=self.principals, stores=self._stores, approvals=self.autonomy.approvals,
                         assistant_runs=self.assistant_runs)

    def chat(self, name: str = "assistant", **spec: Any) -> Any:
        """A ``Chat`` widget (emergent.ui.chat) with assistant ``name``, acting for this process's principal."""
        from emergent.ui.chat import Chat

        return Chat(self.assistant(name, **spec), principal=self.principal)

    def dashboard(self) -> Any:
        """The workstation at a glance (emergent.ui.dashboard): memory, pending approvals, recent tool
        calls, jobs and the assistant's last runs, each linking to its panel. ``ws`` displayed in a
        notebook shows it."""
        from emergent.ui.dashboard import Dashboard

        return Dashboard.of(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self.dashboard()._repr_mimebundle_(include=include, exclude=exclude)  # type: ignore[no-any-return]

    def _repr_html_(self) -> str:  # front-ends that ask for HTML only (nbconvert, GitHub)
        return self.dashboard().html()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Workstation({str(self.path)!r})"

    def assistants_waiting_on(self, approval_id: str) -> tuple[Assistant, str] | None:
        """The assistant and the run that wait for ``approval_id`` (None when no run does)."""
        row = self.assistant_runs.waiting_on(approval_id)
        if row is None:
            return None
        return self.assistant(row.assistant), row.id

    # ------------------------------------------------------------------ backup and recovery
    def _stores(self) -> WorkspaceStores:
        from emergent.workspace.backup import WorkspaceStores

        return WorkspaceStores(path=self.path, sql=self.sql, lance=self.lance, memory=self.memory,
                               embedder_id=self.embedder.id, audit=self.audit, principals=self.principals,
                               clock=self.clock, cipher=self._cipher("backup"))

    def backup(self, note: str | None = None, *, by: Principal) -> BackupInfo:
        """Archive the workspace (LanceDB, SQL, STM) under ``<workspace>/backups`` (emergent.workspace.backup)."""
        from emergent.workspace import backup

        return backup.create(self._stores(), by=by, note=note)

    def backups(self, *, uncatalogued: bool = True) -> list[BackupInfo]:
        """The backups of this workspace, newest first."""
        from emergent.workspace import backup

        return backup.list_backups(self.path, self.sql, uncatalogued=uncatalogued)

    def verify_backup(self, backup_id: str, *, by: Principal) -> dict[str, Any]:
        """Recompute every checksum of a backup (raises IntegrityError naming what differs)."""
        from emergent.workspace import backup

        return backup.verify(self._stores(), backup_id, by=by)

    def restore(self, backup_id: str, *, by: Principal, governance: bool = False,
                repurge: bool = False) -> RestoreReport:
        """A human restores backup ``backup_id`` (verified first); services are rebuilt on next access.

        The audit chain and the governance state (pause, suspensions, policy, overrides,
        principals, approvals) stay as they are now; ``governance=True`` restores those from the
        backup too (the audit chain still only grows). A backup holding memories erased since it was taken
        is refused unless ``repurge=True``: the erased memories are then removed from it before it goes live."""
        from emergent.workspace import backup

        return backup.restore(self._stores(), backup_id, by=by, governance=governance, repurge=repurge,
                              release=self._release, reopen=self._reopen)

    def _release(self) -> None:
        """Close every service and store (a restore replaces their files) and forget them; the
        principal directory and the principal of this process survive (see _KEEP_ON_RESTORE)."""
        if "memory" in self.__dict__:
            self.memory.promote_on_close = False  # STM is restored from the dump, not promoted
        self.close()
        for name in list(vars(self)):
            if name not in _KEEP_ON_RESTORE and isinstance(getattr(type(self), name, None), functools.cached_property):
                del self.__dict__[name]
        self._assistants.clear()  # they hold the services just closed

    def _reopen(self) -> WorkspaceStores:
        """The stores, opened again (lazily) on whatever files are in place now."""
        if "principals" in self.__dict__:  # the directory (and its seal key) survives; its stores do not
            self.principals.sql = self.sql
            self.principals.audit = self.audit
        return self._stores()

    # ------------------------------------------------------------------ lifecycle
    def status(self) -> dict[str, Any]:
        from emergent import __version__

        mem = self.memory
        stm_health = mem.stm.health()
        head = self.audit.head()
        out: dict[str, Any] = {
            "version": __version__, "workspace": str(self.path), "principal": self.principal.key,
            "embedder": mem.embedder.id, "embedder_setting": self.settings.embedder,
            "sql": self.sql.dialect, "stm": mem.stm.name, "stm_health": stm_health,
            "counts": {"long_term_memories": mem.ltm.count(), "short_term_items": stm_health.get("items"),
                       "audit_entries": head.seq if head else 0,
                       "pending_approvals": len(self.autonomy.approvals.list("pending")),
                       "jobs": len(self.jobs.list())},
            "hot_index": {**mem.ltm.hot.stats(), "enabled": mem.config.hot_index,
                          "failures": mem.index_failures},
            "healthy": bool(stm_health.get("ok", True)) and not stm_health.get("reset_detected", False),
        }
        return out

    def close(self) -> None:
        """Close the services (newest first), then the audit trail (they write to it), then SQL.
        One that fails (a full disk) does not keep the others open: the first failure is raised
        after all of them were closed."""
        failed: list[Exception] = []
        try:
            while self._closers:
                fn = self._closers.pop(0)
                try:
                    fn()
                except Exception as exc:  # noqa: BLE001 - raised below, once everything is closed
                    failed.append(exc)
        finally:
            try:
                if "audit" in self.__dict__:
                    self.__dict__["audit"].close()
            finally:
                if "sql" in self.__dict__:
                    self.__dict__["sql"].dispose()
        if failed:
            raise failed[0]

    def __enter__(self) -> Workstation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
