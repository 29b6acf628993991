// A GET answering {items: [...], next_cursor} is a list: it must take ?cursor= and ?limit=.
const objectBranches = (schema) => {
  if (!schema || typeof schema !== "object") return [];
  const union = schema.oneOf || schema.anyOf || schema.allOf;
  if (Array.isArray(union)) return union.flatMap(objectBranches);
  return schema.properties ? [schema] : [];
};

export default (operation) => {
  if (!operation || typeof operation !== "object") return;
  const ok = (operation.responses || {})["200"];
  const schema = ok && ok.content && ok.content["application/json"] && ok.content["application/json"].schema;
  const isPage = objectBranches(schema).some(
    (s) => s.properties.items && s.properties.next_cursor,
  );
  if (!isPage) return;
  const query = new Set(
    (Array.isArray(operation.parameters) ? operation.parameters : [])
      .filter((p) => p && p.in === "query")
      .map((p) => p.name),
  );
  const missing = ["cursor", "limit"].filter((name) => !query.has(name));
  if (missing.length) {
    return [{ message: `A list (items + next_cursor) must accept query parameter(s): ${missing.join(", ")}.` }];
  }
};
