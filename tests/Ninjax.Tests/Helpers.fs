module Ninjax.Tests.Helpers

open System
open Expecto
open TorchSharp
open Ninjax

/// A float32 tensor from values.
let vec (xs: float32 list) : torch.Tensor = torch.tensor (Array.ofList xs)

/// A float32 scalar tensor.
let scalar (x: float32) : torch.Tensor = torch.tensor x

/// The values of a tensor as a float32 array.
let values (t: torch.Tensor) : float32[] = t.detach().cpu().to_type(torch.float32).data<float32>().ToArray()

/// True when both tensors have the same shape, dtype and bit-identical values.
let identical (a: torch.Tensor) (b: torch.Tensor) : bool =
    a.shape = b.shape && a.dtype = b.dtype && (a.numel () = 0L || a.allclose (b, 0.0, 0.0, true))

/// Asserts two tensors are identical.
let expectIdentical (actual: torch.Tensor) (expected: torch.Tensor) (msg: string) =
    if not (identical actual expected) then
        failtestf "%s: expected %s, got %s" msg (expected.ToString(TensorStringStyle.Julia)) (actual.ToString(TensorStringStyle.Julia))

/// Asserts two tensors agree within a tolerance.
let expectClose (actual: torch.Tensor) (expected: torch.Tensor) (tol: float) (msg: string) =
    if actual.shape <> expected.shape || not (actual.allclose (expected, tol, tol)) then
        failtestf "%s: expected %s, got %s" msg (expected.ToString(TensorStringStyle.Julia)) (actual.ToString(TensorStringStyle.Julia))

/// Asserts two states hold the same keys with identical tensors.
let expectSameState (actual: State) (expected: State) (msg: string) =
    Expect.sequenceEqual (State.keys actual) (State.keys expected) (msg + ": keys")
    for k in State.keys expected do
        expectIdentical actual.[k] expected.[k] (sprintf "%s: entry %s" msg k)

/// Runs f, expects an exception of type 'E and returns its message.
let throwsWith<'E when 'E :> exn> (f: unit -> unit) : string =
    try
        f ()
        failtestf "Expected %s, but nothing was thrown." typeof<'E>.Name
    with
    | :? 'E as e -> e.Message
    | :? Expecto.AssertException -> reraise ()
    | e -> failtestf "Expected %s, got %s: %s" typeof<'E>.Name (e.GetType().Name) e.Message

/// Asserts that a message mentions every fragment.
let mentions (message: string) (fragments: string list) =
    for f in fragments do
        Expect.stringContains message f (sprintf "error message should mention '%s'" f)

/// Options with create on and a seed.
let creating = Options.seeded 0L |> Options.withCreate true

/// A float32 tensor of a shape filled with one value.
let full (shape: int64[]) (value: float32) : torch.Tensor = torch.ones(shape).mul (value.ToScalar())

/// Runs a purified function for n steps on the same argument and returns the states and outputs
/// in order.
let runSteps (n: int) (f: State -> 'A -> State * 'B) (state: State) (arg: 'A) : (State * 'B) list =
    List.scan (fun (s, _) _ -> let s1, out = f s arg in s1, Some out) (state, None) [ 1..n ]
    |> List.tail
    |> List.map (fun (s, out) -> s, out.Value)

/// A deep copy of a state: every tensor cloned, so two runs can start from equal states without
/// sharing (or donating) each other's tensors.
let copyState (s: State) : State = State.map (fun _ t -> t.clone ()) s
