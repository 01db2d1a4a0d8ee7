"""Settings: environment variables with the prefix ``EMERGENT_`` and an optional
``emergent.toml`` in the workspace. Services never read these themselves: the
:class:`~emergent.workstation.Workstation` reads them once and passes what each service needs.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from emergent.errors import ConfigError


class MemoryConfig(BaseModel):
    """Tunables of the memory system (also versioned by the config registry later)."""

    # short-term memory
    stm_max_items: int = Field(2000, ge=1, description="items kept per scope before eviction")
    stm_ttl_s: float = Field(7 * 86400, gt=0, description="maximum STM lifetime")
    # decay (forgetting curve R = exp(-t / S), stability S grows on each reinforcement)
    initial_stability_days: float = Field(7.0, gt=0, description="stability of an episodic memory of importance 0")
    kind_stability_factor: dict[str, float] = Field(
        default_factory=lambda: {"episodic": 1.0, "semantic": 4.0, "procedural": 8.0},
        description="facts and procedures fade slower than episodes",
    )
    stability_growth: float = Field(1.8, gt=1.0)
    importance_stability_boost: float = Field(4.0, ge=0.0)
    archive_floor: float = Field(0.05, ge=0.0, le=1.0)
    protect_importance: float = Field(0.9, ge=0.0, le=1.0, description="never archive at or above this")
    # consolidation
    promote_importance: float = Field(0.6, ge=0.0, le=1.0)
    promote_access_count: int = Field(2, ge=1)
    dedup_similarity: float = Field(0.92, gt=0.0, le=1.0)
    # ranking (Generative Agents style weighted sum over a fused hybrid candidate list)
    w_relevance: float = 1.0
    w_recency: float = 0.1
    w_importance: float = 0.1
    w_strength: float = 0.05
    recency_half_life_days: float = Field(30.0, gt=0)
    fusion: Literal["scores", "rrf"] = Field(
        "scores", description="scores: weighted mean of min-max normalised scores; rrf: reciprocal-rank fusion")
    rrf_k: int = Field(60, ge=1, description="RRF constant (also turns rank-only retrievers into scores)")
    w_vector: float = Field(1.0, ge=0.0)
    w_text: float = Field(2.0, ge=0.0)
    w_neighbors: float = Field(0.5, ge=0.0, description="weight of temporal-neighbour evidence")
    neighbor_window_s: float = Field(300.0, ge=0.0, description="episodic memories this close in time are neighbours")
    neighbor_span: int = Field(2, ge=0, le=100, description="at most this many memories either side (in time "
                               "order; same time: batch order) are an episode's neighbours")
    neighbor_expand: bool = Field(True, description="neighbours of candidates join the pool even when no "
                                  "retriever found them (episode context over the whole scope)")
    w_time: float = Field(0.4, ge=0.0, description="boost of memories whose event time is in a period the query "
                          "names ('on 8 May, 2023', 'in June 2023', 'in 2023')")
    time_before_s: float = Field(86400.0, ge=0.0, description="a named period starts this much earlier")
    time_after_s: float = Field(14 * 86400.0, ge=0.0, description="and ends this much later (things are told "
                                "after they happen)")
    prf_docs: int = Field(0, ge=0, le=100, description="pseudo-relevance feedback (RM3): expand the full-text "
                          "query from this many of its best matches in the scope (0: off)")
    prf_terms: int = Field(10, ge=0, le=200, description="expansion terms taken from the feedback memories")
    prf_original: float = Field(0.6, gt=0.0, le=1.0, description="share of the original query terms in the "
                                "expanded query")
    bm25_k1: float = Field(0.9, gt=0.0, description="BM25 term-frequency saturation of the full-text scores")
    bm25_b: float = Field(0.4, ge=0.0, le=1.0, description="BM25 length normalisation (0: none, 1: full)")
    w_context: float = Field(0.25, ge=0.0, description="weight of the dense match of a memory's episode (its vector "
                             "summed with its neighbours')")
    context_span: int = Field(2, ge=0, le=20, description="neighbours either side in an episode vector")
    context_decay: float = Field(1.0, ge=0.0, le=1.0, description="a neighbour d rows away counts decay**d")
    w_text_context: float = Field(0.0, ge=0.0, description="weight of the best full-text match among a memory's "
                                  "episode neighbours")
    w_coverage: float = Field(1.25, ge=0.0, description="weight of the idf-weighted share of the query's terms found "
                              "in a memory or its episode neighbours")
    candidates: int = Field(100, ge=10, le=2000, description="depth of each retriever's candidate list")
    # storage
    compress_above_bytes: int = Field(16 * 1024, ge=256)
    max_text_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    ann_index_threshold: int = Field(50_000, ge=256)
    # the hot recall index (emergent.memory.hot)
    hot_index: bool = Field(True, description="recall from the in-process hot index; false: LanceDB's own "
                            "vector and full-text queries (also the fallback when the index fails)")
    hot_exact_max_rows: int = Field(
        20_000, ge=1000, description="an agent's memories are searched exactly (float32) up to this many; "
        "above it through an HNSW graph over 8-bit quantised vectors (~4x less memory)")
    hot_ef_search: int = Field(128, ge=16, le=4096, description="HNSW search breadth above hot_exact_max_rows")


class IntegrationSettings(BaseSettings):
    """Credentials and endpoints of the external integrations, as flat ``EMERGENT_<VENDOR>_*``
    variables (``EMERGENT_GITHUB_TOKEN``, ``EMERGENT_JIRA_BASE_URL``...). Base URLs are settable so a
    self-hosted instance (GitHub Enterprise, GitLab) or a local test server can stand in."""

    model_config = SettingsConfigDict(env_prefix="EMERGENT_", extra="ignore")

    github_token: SecretStr | None = None
    github_base_url: str = "https://api.github.com"
    gitlab_token: SecretStr | None = None
    gitlab_base_url: str = "https://gitlab.com/api/v4"
    jira_base_url: str | None = Field(None, description="https://<site>.atlassian.net")
    jira_email: str | None = None
    jira_token: SecretStr | None = None
    confluence_base_url: str | None = Field(None, description="https://<site>.atlassian.net")
    confluence_email: str | None = None
    confluence_token: SecretStr | None = None
    slack_token: SecretStr | None = None
    slack_base_url: str = "https://slack.com/api"
    linear_token: SecretStr | None = None
    linear_base_url: str = "https://api.linear.app/graphql"
    notion_token: SecretStr | None = None
    notion_base_url: str = "https://api.notion.com"
    notion_version: str = "2025-09-03"
    pagerduty_token: SecretStr | None = None
    pagerduty_base_url: str = "https://api.pagerduty.com"
    pagerduty_from: str | None = Field(None, description="e-mail of a PagerDuty user, needed to write")
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: str = Field("starttls", description="starttls | ssl | none")
    smtp_from: str | None = None
    imap_host: str | None = None
    imap_port: int = 993
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_security: str = Field("ssl", description="ssl | starttls | none")
    http_timeout_s: float = Field(30.0, gt=0)
    http_max_retries: int = Field(3, ge=0, le=10, description="retries on 429 / 5xx per request")
    http_max_wait_s: float = Field(60.0, ge=0, description="longest Retry-After honoured")


class GraphConfig(BaseModel):
    """Knowledge graph: whether it follows memory, and its weight in recall's fusion."""

    follow_memory: bool = Field(True, description="update the graph on remember/ingest/forget")
    recall: bool = Field(True, description="fuse graph search (personalised PageRank) into Memory.recall")
    recall_weight: float = Field(1.0, ge=0.0, description="fusion weight of the graph's ranked list in recall")
    extractor: str = Field("auto", description="auto (llm when configured) | rules | llm")


class ToolsConfig(BaseModel):
    """Built-in tools and the sandbox (``EMERGENT_TOOLS__<NAME>``)."""

    http_allow_hosts: list[str] = Field(default_factory=list, description="hosts http_get may fetch")
    sandbox_timeout_s: float = Field(10.0, gt=0, description="default wall-clock limit of sandboxed runs")
    sandbox_memory_mb: int = Field(512, ge=16, description="default address-space limit of sandboxed runs")
    approval_ttl_s: float = Field(3600.0, gt=0, description="pending approvals expire (auto-reject) after this")


class WorkflowsConfig(BaseModel):
    """Workflows (``EMERGENT_WORKFLOWS__<NAME>``): where their steps run."""

    executor: str = Field("threads", description="executor by string id: threads, threads:N (N workers), or "
                                                  "dask://host:port (a Dask distributed scheduler)")
    max_workers: int = Field(32, ge=1, description="threads of the threads executor (and of the engine's own pool)")


class BrowserConfig(BaseModel):
    """Browser automation (``EMERGENT_BROWSER__<NAME>``): Playwright driving a Chromium on this machine."""

    executable: str = Field("/usr/bin/chromium", description="the Chromium Playwright drives (nothing is "
                            "downloaded: Debian's chromium package)")
    headless: bool = Field(True, description="false: show the window (needs a display) so a person can drive "
                           "a recording")
    allow_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost"],
        description="hosts a session may reach (navigation, redirects, sub-resources, pop-ups); 'host', "
                    "'host:port' or '*.example.org'; everything else is blocked and audited")
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description='values scripts refer to as ${secrets.NAME} (JSON, e.g. '
                                          '{"portal_password": "..."}); never stored in a script')
    timeout_ms: int = Field(10_000, ge=100, le=600_000, description="how long an action waits for its element")
    navigation_timeout_ms: int = Field(30_000, ge=100, le=600_000, description="how long a page load may take")
    trace: bool = Field(True, description="keep a Playwright trace (screenshots and DOM snapshots) per replay")
    max_sessions: int = Field(8, ge=1, le=256, description="open sessions at once in this process")


class ApiConfig(BaseModel):
    """The REST API (``EMERGENT_API__<NAME>``; ``emergent serve``)."""

    host: str = Field("127.0.0.1", description="address emergent serve listens on")
    port: int = Field(8765, ge=1, le=65535, description="port emergent serve listens on")
    rate_limit: str = Field("600/minute", description="requests per token: N/second, N/minute or N/hour "
                                                      "(counted in Redis when configured, else in the process)")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="requests with a larger body are refused (413)")
    instance: str | None = Field(None, description="this instance's name in logs, metrics and traces "
                                                   "(default: host:port)")
    token_max_ttl_days: float = Field(90.0, gt=0, description="the longest a token may live")
    quick_threads: int = Field(2, ge=1, le=64, description="threads per server process running quick requests "
                                                           "(token checks, memory reads and writes, in-process "
                                                           "tools); other requests use a pool of 40")
    inline_reads: bool = Field(True, description="answer token checks, memory recall and get and memory.recall "
                                                 "tool calls on the event loop, not a thread (faster under load; a "
                                                 "read that waits holds its worker process)")


class SecurityConfig(BaseModel):
    """Encryption at rest and retention (``EMERGENT_SECURITY__<NAME>``)."""

    encrypt: bool = Field(False, description="seal memory text, payloads and sensitive SQL columns with AES-GCM "
                                             "(envelope encryption under the key-encryption key)")
    kek_file: Path | None = Field(None, description="file holding the 32-byte key-encryption key (base64); "
                                                    "default: kek in the audit directory, created 0600")
    kek: SecretStr | None = Field(None, description="the key-encryption key itself (base64 of 32 bytes); "
                                                    "wins over kek_file")


class MonitoringConfig(BaseModel):
    """Logs, metrics and traces (``EMERGENT_MONITORING__<NAME>``)."""

    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line with "
                                                                     "request and run ids")
    otel_endpoint: str | None = Field(None, description="OTLP/HTTP endpoint traces are exported to "
                                                        "(none: traces stay in the process)")
    service_name: str = Field("emergent", description="service.name of traces and the job label of metrics")
    audit_verify_interval_s: float = Field(600.0, ge=0, description="how often /metrics verifies the audit chain "
                                                                   "in the background (0: never)")


class Settings(BaseSettings):
    """Everything configurable, one place. Every field is an ``EMERGENT_<NAME>`` variable."""

    model_config = SettingsConfigDict(
        env_prefix="EMERGENT_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path | None = Field(None, description="workspace directory")
    redis_url: str | None = Field(None, description="redis://, rediss://, unix:// or redis+cluster://")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite in the workspace if unset")
    lance_uri: str | None = Field(None, description="LanceDB URI; <workspace>/lance if unset")
    workspace_id: str | None = Field(
        None, description="the workspace's identity in shared stores (Redis key prefix); set the same value on "
                          "every host of a scaled-out deployment (default: the workspace path)")
    lance_storage_options: dict[str, str] = Field(
        default_factory=dict, description='object-store options of an s3:// lance_uri, e.g. {"endpoint": '
                                          '"http://127.0.0.1:9000", "region": "us-east-1"}')
    embedder: str = Field("auto", description="minilm | hashing | openai:<model> | auto")
    embed_base_url: str | None = None
    embed_api_key: str | None = None
    embed_cache_mb: float = Field(
        16.0, ge=0, description="the embedding cache of each process, in MB (LRU; about 9,000 MiniLM rows at 16; "
                                "0 turns it off); a text is cached the second time it is embedded")
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str | None = None
    log_level: str = "WARNING"
    stm_backend: str = Field(
        "auto", description="short-term memory backend by id: auto (redis with EMERGENT_REDIS_URL, else sqlite), "
                            "sqlite, redis, local (in the process), or a registered emergent.stm entry point")
    stm_fallback: Literal["raise", "ltm"] = Field(
        "raise", description="when Redis is down: raise, or write long-term memory instead"
    )
    principal: str | None = Field(
        None, description="act as service:NAME or agent:NAME instead of the OS user (only ever less trust)")
    agents: list[str] = Field(default_factory=list, description="agents that exist by configuration (names)")
    agent_bus: str = Field(
        "auto", description="the agents' message bus by string id: auto (Redis Streams with EMERGENT_REDIS_URL, "
                            "else in the process), memory, or redis")
    agent_bus_secret: SecretStr | None = Field(
        None, description="seal each Redis bus entry's sender and body with this secret (the same on every "
                          "machine of the workspace); entries without a valid seal are dropped and audited")
    roles: dict[str, list[str]] = Field(
        default_factory=dict, description='roles by principal key, e.g. {"agent:scout": ["role:analyst"]}')
    gc_freeze: bool = Field(
        True, description="freeze the heap present when memory opens out of the cyclic GC's sight (recall p99)")
    audit_dir: Path | None = Field(
        None, description="where the audit chain's signed head and its HMAC key live (default: the user's "
                          "config directory, apart from the workspace and its database)")
    memory: MemoryConfig = Field(default_factory=lambda: MemoryConfig())
    integrations: IntegrationSettings = Field(default_factory=lambda: IntegrationSettings())
    graph: GraphConfig = Field(default_factory=GraphConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    workflows: WorkflowsConfig = Field(default_factory=WorkflowsConfig)
    browser: BrowserConfig = Field(default_factory=BrowserConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    @field_validator("redis_url", "database_url", "lance_uri", "llm_base_url", "embed_base_url")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v or None

    def audit_anchor_dir(self) -> Path:
        if self.audit_dir is not None:
            return Path(self.audit_dir).expanduser().resolve()
        import platformdirs

        return Path(platformdirs.user_config_dir("emergent", appauthor=False)) / "audit"

    def workspace(self) -> Path:
        if self.home is not None:
            return Path(self.home).expanduser().resolve()
        import platformdirs

        return Path(platformdirs.user_data_dir("emergent", appauthor=False))


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings from env, then ``<workspace>/emergent.toml``, then explicit overrides."""
    if path is not None:
        overrides["home"] = Path(path)
    try:
        base = Settings(**overrides)
        toml_file = base.workspace() / "emergent.toml"
        if not toml_file.exists():
            return base
        file_values = tomllib.loads(toml_file.read_text("utf-8"))
        env_set = {k[len("EMERGENT_"):].lower() for k in os.environ if k.startswith("EMERGENT_")}
        merged = {k: v for k, v in file_values.items() if k not in env_set}
        return Settings(**{**merged, **overrides})
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"invalid settings: {exc}",
            hint="check the EMERGENT_* variables and emergent.toml in the workspace",
        ) from exc
