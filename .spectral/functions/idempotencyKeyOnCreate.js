// A POST that answers 201 creates something: callers must be able to retry it safely.
export default (operation) => {
  if (!operation || typeof operation !== "object") return;
  const responses = operation.responses || {};
  if (!Object.prototype.hasOwnProperty.call(responses, "201")) return;
  const parameters = Array.isArray(operation.parameters) ? operation.parameters : [];
  const found = parameters.some(
    (p) => p && p.in === "header" && String(p.name).toLowerCase() === "idempotency-key",
  );
  if (!found) {
    return [{ message: "A creating POST (201) must accept the Idempotency-Key header." }];
  }
};
