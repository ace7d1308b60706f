export { {{ component_name }} } from "./{{ component_name }}";
export type { {{ component_name }}Props } from "./{{ component_name }}";
