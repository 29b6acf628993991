// Every operation names the scopes it needs, unless marked `x-public: true` or its path
// is one of the platform's public ones (options.publicPaths, regular expressions).
export default (operation, options, context) => {
  if (!operation || typeof operation !== "object") return;
  if (operation["x-public"] === true) return;
  const path = String(context.path[1] || "");
  const publicPaths = (options && options.publicPaths) || [];
  if (publicPaths.some((pattern) => new RegExp(pattern).test(path))) return;
  const root = context.document && context.document.data && context.document.data.security;
  const security = operation.security !== undefined ? operation.security : root;
  if (!Array.isArray(security) || security.length === 0) {
    return [{ message: "The operation has no security requirement (mark public ones x-public: true)." }];
  }
  const scoped = security.every((alt) => alt && Object.keys(alt).length > 0);
  if (!scoped) {
    return [{ message: "An empty security alternative makes authorization optional." }];
  }
};
