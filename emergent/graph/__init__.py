"""The knowledge graph: entities and relations from memories, temporal edges, inference, graph
search (personalised PageRank), communities, and an offline pyvis renderer (``render``)."""

from emergent.graph.extract import Extraction, LLMExtractor, Mention, Relation, RuleExtractor
from emergent.graph.infer import DEFAULT_RULES, MergeCandidate, Rule
from emergent.graph.model import Edge, Node, UpdateReport
from emergent.graph.search import GraphSearchResult, personalized_pagerank
from emergent.graph.service import KnowledgeGraph

__all__ = [
    "DEFAULT_RULES", "Edge", "Extraction", "GraphSearchResult", "KnowledgeGraph", "LLMExtractor", "Mention",
    "MergeCandidate", "Node", "Relation", "Rule", "RuleExtractor", "UpdateReport", "personalized_pagerank",
]
