-- A receipt's lines are its stock movements (a sale takes each line's
-- quantity off the floor, a return puts it back): the journal no longer
-- writes them a second time as movement rows, which cost a third of its
-- throughput (three more B-trees per line, one of them goods-major). The
-- movements table keeps the operator's documents (arrival, write_off,
-- count); the lines get the goods-major index the movements had.
CREATE INDEX backoffice_receipt_lines_goods ON backoffice_receipt_lines (goods_id);
DELETE FROM backoffice_movements WHERE kind IN ('sale', 'return');
CREATE INDEX backoffice_movements_document ON backoffice_movements (document);
