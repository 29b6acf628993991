/* The Tally portal explorer's bootstrap (a file, not an inline script: the page's
 * Content-Security-Policy allows scripts from this origin only).
 *
 * - The access token is pasted once and kept in this browser's localStorage; every
 *   request to the endpoint carries it as "Authorization: Bearer <token>".
 * - The example operations (contracts/graphql/examples) open as GraphiQL's first
 *   tabs and stay one click away in the "Examples" list.
 * - Subscriptions run over a WebSocket to the same endpoint (graphql-transport-ws,
 *   decision 0038), the token sent in connection_init; CSP's connect-src 'self'
 *   covers ws: and wss: of this origin.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "tally.portal.token";
  var root = document.getElementById("graphiql");
  var endpoint = root.getAttribute("data-endpoint");
  var operationsUrl = root.getAttribute("data-operations");
  var tokenInput = document.getElementById("tally-token");
  var statusText = document.getElementById("tally-status");
  var examples = document.getElementById("tally-examples");

  // Radix (inside GraphiQL) adds a <style> while a dialog is open: the page's nonce
  // lets that one through (style-src), nothing else inline runs.
  var nonce = document.querySelector('meta[name="tally-style-nonce"]');
  if (nonce) {
    window.__webpack_nonce__ = nonce.getAttribute("content");
  }

  function storedToken() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function showStatus() {
    statusText.textContent = storedToken()
      ? "Token saved in this browser."
      : "No token: paste a portal access token (scope 'portal').";
  }

  document.getElementById("tally-token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var token = tokenInput.value.trim().replace(/^Bearer\s+/i, "");
    window.localStorage.setItem(TOKEN_KEY, token);
    tokenInput.value = "";
    showStatus();
  });
  document.getElementById("tally-token-clear").addEventListener("click", function () {
    window.localStorage.removeItem(TOKEN_KEY);
    showStatus();
  });
  showStatus();

  function asGraphQL(response, text) {
    try {
      var body = JSON.parse(text);
      if (body && !("data" in body) && !("errors" in body) && body.detail) {
        // A problem+json answer (401, 403, 413, 429): shown as a GraphQL error.
        return { errors: [{ message: response.status + " " + body.detail, extensions: body }] };
      }
      return body;
    } catch (e) {
      return { errors: [{ message: response.status + " " + text }] };
    }
  }

  function fetcher(params, options) {
    var headers = { "Content-Type": "application/json", Accept: "application/json" };
    var extra = (options && options.headers) || {};
    Object.keys(extra).forEach(function (name) {
      headers[name] = extra[name];
    });
    var token = storedToken();
    if (token && !headers.Authorization) {
      headers.Authorization = "Bearer " + token;
    }
    return window
      .fetch(endpoint, {
        method: "POST",
        headers: headers,
        body: JSON.stringify(params),
        credentials: "omit",
      })
      .then(function (response) {
        return response.text().then(function (text) {
          return asGraphQL(response, text);
        });
      });
  }

  function isSubscription(params) {
    var text = (params.query || "").replace(/#[^\n]*/g, "");
    var pattern = params.operationName
      ? new RegExp("\\bsubscription\\s+" + params.operationName + "\\b")
      : /^\s*subscription\b/;
    return pattern.test(text);
  }

  function socketUrl() {
    var url = new URL(endpoint, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  // One graphql-transport-ws connection per subscription, as an async iterator of its
  // results (GraphiQL shows each as it comes); stopping it completes and closes.
  function subscribe(params) {
    var queue = [];
    var waiting = null;
    var finished = false;
    var socket = new WebSocket(socketUrl(), "graphql-transport-ws");

    function push(result) {
      if (finished) {
        return;
      }
      if (result.done) {
        finished = true;
      }
      if (waiting) {
        var resolve = waiting;
        waiting = null;
        resolve(result);
      } else {
        queue.push(result);
      }
    }
    function send(message) {
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify(message));
      }
    }
    socket.onopen = function () {
      send({ type: "connection_init", payload: { Authorization: "Bearer " + storedToken() } });
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "connection_ack") {
        send({ id: "1", type: "subscribe", payload: params });
      } else if (message.type === "next") {
        push({ value: message.payload, done: false });
      } else if (message.type === "error") {
        push({ value: { errors: message.payload }, done: false });
        push({ value: undefined, done: true });
      } else if (message.type === "complete") {
        push({ value: undefined, done: true });
      } else if (message.type === "ping") {
        send({ type: "pong" });
      }
    };
    socket.onclose = function (event) {
      if (event.code !== 1000) {
        var said = "The socket closed: " + event.code + " " + event.reason;
        push({ value: { errors: [{ message: said }] }, done: false });
      }
      push({ value: undefined, done: true });
    };
    var iterator = {
      next: function () {
        if (queue.length) {
          return Promise.resolve(queue.shift());
        }
        if (finished) {
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise(function (resolve) {
          waiting = resolve;
        });
      },
      return: function () {
        send({ id: "1", type: "complete" });
        socket.close(1000);
        push({ value: undefined, done: true });
        return Promise.resolve({ value: undefined, done: true });
      },
    };
    iterator[Symbol.asyncIterator] = function () {
      return iterator;
    };
    return iterator;
  }

  function fetchOrSubscribe(params, options) {
    return isSubscription(params) ? subscribe(params) : fetcher(params, options);
  }

  var reactRoot = window.ReactDOM.createRoot(root);
  var operations = [];

  function render(selected) {
    var props = {
      fetcher: fetchOrSubscribe,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
      defaultTabs: operations.length
        ? operations.map(function (op) {
            return { query: op.query, variables: op.variables || undefined };
          })
        : undefined,
    };
    if (selected) {
      props.query = selected.query;
      props.variables = selected.variables || "";
    }
    reactRoot.render(window.React.createElement(window.GraphiQL, props));
  }

  examples.addEventListener("change", function () {
    var chosen = operations[Number(examples.value)];
    if (chosen) {
      render(chosen);
    }
  });

  window
    .fetch(operationsUrl, { credentials: "omit" })
    .then(function (response) {
      return response.ok ? response.json() : [];
    })
    .catch(function () {
      return [];
    })
    .then(function (found) {
      operations = Array.isArray(found) ? found : [];
      operations.forEach(function (op, index) {
        var option = document.createElement("option");
        option.value = String(index);
        option.textContent = op.name + " (" + op.file + ".graphql)";
        examples.appendChild(option);
      });
      examples.disabled = operations.length === 0;
      render(null);
    });
})();
