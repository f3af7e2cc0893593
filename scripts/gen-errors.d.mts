export interface ErrorRow { code: string; exits: Set<number>; kinds: Set<string>; messages: string[]; where: string[] }
export function table(): ErrorRow[];
export function renderDoc(rows: ErrorRow[]): string;
export function renderTs(rows: ErrorRow[]): string;
