/**
 * The edge proxy runtimes put in front of a service for zero-downtime releases (see edge-proxy.ts).
 * Not a plugin of its own: a runtime plugin (compose, swarm) owns the proxy's life and imports this.
 */
export {
  EdgeProxy, edgeProxyOptionsSchema, renderHaproxyConfig, parseServersState, backendState, parseSessions,
  DEFAULT_EDGE_PROXY_IMAGE, EDGE_PROXY_IMAGE_SCRIPT, proxyName,
  type EdgeProxyOptions, type EdgeProxySpec, type BackendState, type ServerStateLine,
} from './edge-proxy.js';
