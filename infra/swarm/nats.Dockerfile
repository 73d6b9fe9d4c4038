# The NATS server image of the Swarm stack when no registry is reachable (scripts/images.sh builds it
# from this machine's nats-server binary, which needs only libc). A registry user can use the
# official nats:2.9-alpine instead (MESH_NATS_IMAGE; then the stack has no health check for NATS:
# that image has no node for the one below).
ARG BASE_IMAGE=mesh/node-base:20
FROM ${BASE_IMAGE}
COPY nats-server /usr/local/bin/nats-server
# The JetStream store: a named volume mounted here takes this folder's owner when it is first created.
RUN mkdir -p /data /etc/nats && chown 10001:10001 /data
USER 10001:10001
EXPOSE 4222 6222 8222
STOPSIGNAL SIGTERM
# The server runs with JetStream enabled. Not the plain /healthz, which also waits for the JetStream
# meta leader: a Swarm service is reachable (its DNS name and virtual IP) only once healthy, so the
# servers of a new cluster would wait for each other's routes forever.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "require('http').get('http://127.0.0.1:8222/healthz?js-enabled-only=true',(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
ENTRYPOINT ["nats-server"]
CMD ["-c", "/etc/nats/nats.conf"]
