"""The offline checks of rendered Kubernetes objects, one module per concern: `schema` (would the
API server accept it), `security` (Pod Security "restricted", our container rules, no secret
values), `references` (names and selectors resolve inside the render), `metrics_contract` (every
queried series is one the server exports; analyses guard an empty result). `objects` holds the
lookups they share, `rendering` runs kustomize; aistudio.deploy.validate runs them all."""
