# The runtime stage of docker/Dockerfile, fed with a binary built outside the image (CI, or
# wherever the Rust builder image cannot be pulled). docker/build.sh prepares its context:
# out/bascule and out/etc/bascule/bascule.toml.
# ---- runtime: from here on, docker/runtime.Dockerfile is the same ----
FROM scratch
COPY out/ /
# No shell, no libc, no users database: a numeric non-root user.
USER 65532:65532
# The config directory: mount a directory here (see README "Docker").
ENV BASCULE_CONFIG=/etc/bascule/bascule.toml
# 8080 HTTP, 8443 HTTPS (when [listen] https is set), 9901 admin API (loopback by default),
# 9902 metrics only (when [admin] metrics_listen is set).
EXPOSE 8080 8443 9901 9902
# SIGTERM: stop accepting, let in-flight requests finish (limits.shutdown_grace), exit 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=4s --start-period=5s --retries=3 CMD ["/bascule", "health"]
ENTRYPOINT ["/bascule"]
CMD ["run"]
