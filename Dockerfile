FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir uv
COPY pyproject.toml uv.lock README.md ./
COPY tally tally
COPY shared shared
COPY system_apis system_apis
COPY process_apis process_apis
COPY experience_apis experience_apis
COPY gateway gateway
RUN uv sync --frozen --no-dev && ln -s /app/.venv/bin/tally /usr/local/bin/tally
USER nobody
